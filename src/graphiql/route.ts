/**
 * GET /graphiql: the self-hosted GraphiQL page and its assets, as built by `npm run build:graphiql` into
 * build/graphiql/. Nothing on the page comes from another origin, and the Content-Security-Policy says so.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { isExotelSid } from '../exotel/sid.js';
import type { GatewayMode } from '../graphql/context.js';

export interface GraphiqlRouterOptions {
  /** Stamped into the page so it can show its simulator banner without a query; else the page asks `{ gateway { mode } }`. */
  mode?: GatewayMode;
  /** A call Sid the pre-filled `call(sid:)` example uses (simulator mode: a seeded call), stamped into the page. */
  exampleCallSid?: string;
  /** Where the bundle is; defaults to build/graphiql/ of the package this module belongs to. */
  bundleDir?: string;
}

/** Levels to climb from this module to the package root: src/graphiql/, dist/graphiql/, dist/src/graphiql/. */
const MAX_LEVELS_UP = 4;

/** build/graphiql/ of the package this module belongs to (the nearest directory above with package.json). */
export function defaultBundleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < MAX_LEVELS_UP; level += 1) {
    dir = dirname(dir);
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'build', 'graphiql');
  }
  return join(process.cwd(), 'build', 'graphiql');
}

/** Attributes the page reads at start; a Sid goes in only if it is one (Sid characters only: no escaping needed). */
function pageData(options: GraphiqlRouterOptions): string {
  const mode = options.mode ? ` data-gateway-mode="${options.mode}"` : '';
  const sid = isExotelSid(options.exampleCallSid) ? ` data-example-call-sid="${options.exampleCallSid}"` : '';
  return mode + sid;
}

/** Only hosts made of host-name characters go into the CSP header (the Host header is client input). */
const SAFE_HOST = /^[A-Za-z0-9.\-:[\]]+$/;

/**
 * The page's policy: everything from 'self'. Monaco sets inline style attributes ('unsafe-inline' for
 * styles only), GraphiQL's CSS inlines its icon font (data: fonts), and graphql-ws needs the page's own
 * origin as ws:/wss:, which older browsers do not cover with 'self'.
 */
function contentSecurityPolicy(req: Request): string {
  const host = req.get('host');
  const ws = host && SAFE_HOST.test(host) ? ` ${req.protocol === 'https' ? 'wss' : 'ws'}://${host}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "worker-src 'self'",
    `connect-src 'self'${ws}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function securityHeaders(req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', contentSecurityPolicy(req));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  next();
}

/** An asset name as the bundle writes them: one path segment, no dot file, no way out of the directory. */
const ASSET_NAME = /^\/[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** How assets are cached: their names carry content hashes. */
const ASSET_CACHING = { immutable: true, maxAge: '365d' } as const;

/**
 * Sends the gzipped copy the build wrote beside an asset (`<name>.gz`, scripts/build-graphiql.mjs) to a
 * client that accepts gzip: the bundle is megabytes, and this compresses it once at build time, never per
 * request. Anything else (no copy, gzip not accepted) goes on to the plain file.
 */
function gzippedCopies(assetsDir: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    // Either way the answer depends on Accept-Encoding, so a cache in between must key on it.
    res.vary('Accept-Encoding');
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !ASSET_NAME.test(req.path) || req.acceptsEncodings('gzip', 'identity') !== 'gzip') return next();
    const copy = resolve(assetsDir, `${req.path.slice(1)}.gz`);
    if (!existsSync(copy)) return next();
    // The asset's own type: sendFile keeps a type already set rather than taking the copy's `.gz`.
    res.type(extname(req.path));
    res.setHeader('Content-Encoding', 'gzip');
    res.sendFile(copy, ASSET_CACHING, (err) => {
      if (!err || res.headersSent) return;
      // Gone meanwhile (a rebuild swapping the bundle): the plain file, or the 404, answers instead.
      res.removeHeader('Content-Encoding');
      res.removeHeader('Content-Type');
      next();
    });
  };
}

/** Where the page is served; its assets are under `${GRAPHIQL_PATH}/assets/`, as the bundle names them. */
export const GRAPHIQL_PATH = '/graphiql';

/**
 * The GraphiQL router, mounted at the root (`app.use(graphiqlRouter())`): index.html at exactly
 * GRAPHIQL_PATH, revalidated on every load; content-hashed assets cached for a year, gzipped when the client
 * accepts it. Its paths are declared
 * in full, strict and case-sensitive, so `/graphiql/` is not a second name of the page (a router mounted on
 * `/graphiql` sees `/graphiql` and `/graphiql/` alike). Without a bundle it answers 503 saying how to build one.
 */
export function graphiqlRouter(options: GraphiqlRouterOptions = {}): Router {
  const bundleDir = options.bundleDir ?? defaultBundleDir();
  const indexFile = join(bundleDir, 'index.html');
  const router = express.Router({ strict: true, caseSensitive: true });
  // The bundle can be rebuilt under a running gateway (npm run build:graphiql); reread index.html when it changes.
  let cached: { mtimeMs: number; html: string } | undefined;

  const readIndex = (): string | undefined => {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(indexFile).mtimeMs;
    } catch {
      return undefined;
    }
    if (cached?.mtimeMs !== mtimeMs) {
      const html = readFileSync(indexFile, 'utf8');
      cached = { mtimeMs, html: html.replace('<html lang="en">', `<html lang="en"${pageData(options)}>`) };
    }
    return cached.html;
  };

  router.get(GRAPHIQL_PATH, securityHeaders, (_req, res) => {
    const html = readIndex();
    if (html === undefined) {
      res
        .status(503)
        .type('text/plain')
        .send(`GraphiQL is not built: run \`npm run build:graphiql\` (expected ${indexFile}).\n`);
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').send(html);
  });

  const assetsDir = join(bundleDir, 'assets');
  router.use(
    `${GRAPHIQL_PATH}/assets`,
    securityHeaders,
    gzippedCopies(assetsDir),
    express.static(assetsDir, { ...ASSET_CACHING, index: false, dotfiles: 'deny' }),
    (_req: Request, res: Response) => {
      res.status(404).type('text/plain').send('Not found\n');
    },
  );

  return router;
}
