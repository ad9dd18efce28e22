/**
 * The answer for a path nothing is served at: 404 with a GraphQL-shaped JSON body (`NOT_FOUND`) that names
 * the path GraphQL is served at. The gateway is a GraphQL API, so the client that gets here is most often a
 * GraphQL client pointed at a near miss (`/graphql/`, `/GraphQL`, `/api/graphql`): it can parse this answer
 * and its message says what to fix, where express's default would send an HTML page. Every unknown path gets
 * the same body: the request's path and query are never echoed (they can carry a webhook token or a phone
 * number). A client mistake: counted (kind `path`), and logged only by its access-log line, at info.
 */
import type { RequestHandler } from 'express';
import { ErrorCode } from '../errors.js';

export interface NotFoundOptions {
  /** Where GraphQL is served (GRAPHQL_PATH), named in the answer. */
  graphqlPath: string;
  /** Where GraphiQL is served (GRAPHIQL_PATH), named for whoever opened the server's root in a browser. */
  graphiqlPath: string;
  /** Counts one client mistake of `kind`. */
  onClientError(kind: string): void;
}

/** Express's last handler: whatever no route answered. */
export function notFoundHandler(options: NotFoundOptions): RequestHandler {
  const message = `Nothing is served at this path. GraphQL is served at ${options.graphqlPath} (POST or GET over HTTP, graphql-ws on the same path), GraphiQL at ${options.graphiqlPath}.`;
  const body = JSON.stringify({ errors: [{ message, extensions: { code: ErrorCode.NOT_FOUND } }] });
  return (_req, res) => {
    options.onClientError('path');
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}

/**
 * For a path express serves with GET only (/healthz, /readyz, /metrics): another method gets 405 with
 * `Allow` rather than the 404 of a path nothing is served at, and OPTIONS gets 204 with `Allow`. A client
 * mistake like the 404: counted (kind `path`), logged only by its access-log line.
 */
export function getOnlyHandler(onClientError: (kind: string) => void): RequestHandler {
  return (req, res) => {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { allow: 'GET, HEAD, OPTIONS' }).end();
      return;
    }
    onClientError('path');
    res.writeHead(405, { allow: 'GET, HEAD, OPTIONS', 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end('Method Not Allowed');
  };
}
