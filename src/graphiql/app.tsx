/**
 * The self-hosted GraphiQL page (GET /graphiql). Bundled by scripts/build-graphiql.mjs; everything it
 * loads, Monaco's workers included, comes from the gateway itself.
 */
import { StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher, type Fetcher, type FetcherParams } from '@graphiql/toolkit';
import { OperationTypeNode, getOperationAST, parse, type ExecutionResult, type FormattedExecutionResult } from 'graphql';
import { createClient } from 'graphql-ws';
import type { Environment } from 'monaco-editor';
import 'graphiql/style.css';
import './app.css';
import { cleanHeaders, DEFAULT_HEADERS, socketClosedMessage, withApiKey } from './headers.js';

/** Worker file names, set at build time (they carry content hashes). */
declare const GRAPHIQL_WORKERS: { editor: string; json: string; graphql: string };

/** The seeded call the server stamped into the page (simulator mode), for a lookup that answers at once. */
const exampleCallSid = document.documentElement.dataset.exampleCallSid;
const simulatorPage = document.documentElement.dataset.gatewayMode === 'SIMULATOR';

/**
 * The operations a new tab starts with. In simulator mode they all answer on the first run: a seeded
 * call, a connect the simulator places, and a watch for incoming calls. Against real Exotel the connect
 * holds placeholders that fail validation, so running it by mistake calls nobody.
 */
function defaultQuery(): string {
  const sid = exampleCallSid ?? 'paste-a-call-sid';
  const [from, to, callerId] = simulatorPage ? ['09876543210', '+919812345670', '08039591111'] : ['YOUR_AGENT_NUMBER', 'CUSTOMER_NUMBER', 'YOUR_EXOPHONE'];
  return `# Exotel GraphQL gateway
#
# ▶ (or Ctrl-Enter inside an operation) runs it.
# Docs (book icon, top left) describe every field.
# With client keys, put the secret part of name:secret:scopes in the API key field above.

query Gateway {
  gateway {
    mode
    version
  }
  rateLimit {
    limitPerMinute
    remaining
    resetsAt
  }
}

query RecentCalls {
  calls(first: 5, filter: { sort: DESC }) {
    totalCount
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      sid
      from
      to
      status
      direction
      startTime
      durationSeconds
    }
  }
}

query OneCall {
  call(sid: "${sid}") {
    sid
    status
    from
    to
    legs {
      id
      status
      onCallDurationSeconds
    }
    events {
      status
      at
      source
    }
  }
}

mutation ConnectCall {
  connectCall(input: { from: "${from}", to: "${to}", callerId: "${callerId}" }) {
    call {
      sid
      status
    }
  }
}

# Runs until stopped: every call's status changes (run ConnectCall to see some).
subscription CallEvents {
  callEvents {
    id
    callSid
    status
    at
    source
  }
}

# Calls ringing in through a flow's Passthru applet.
# ${simulatorPage ? 'Simulator: play one with the curl line of the start log ("play an incoming call").' : 'Point the applet at the incoming-call URL of npm run webhook-urls.'}
subscription IncomingCalls {
  incomingCalls {
    sid
    from
    to
    status
  }
}
`;
}

// Monaco asks for a worker per language; each is a classic script served next to this bundle.
const workerBase = new URL('./', import.meta.url);
const monacoEnvironment: Environment = {
  getWorker(_workerId: string, label: string) {
    const file = label === 'json' ? GRAPHIQL_WORKERS.json : label === 'graphql' ? GRAPHIQL_WORKERS.graphql : GRAPHIQL_WORKERS.editor;
    return new Worker(new URL(file, workerBase), { name: label });
  },
};
window.MonacoEnvironment = monacoEnvironment;

const graphqlUrl = new URL('/graphql', window.location.href);
const subscriptionUrl = new URL(graphqlUrl);
subscriptionUrl.protocol = graphqlUrl.protocol === 'https:' ? 'wss:' : 'ws:';

/** True when the operation GraphiQL is about to run is a subscription (it goes over graphql-ws). */
function isSubscription(query: string, operationName: string | null | undefined): boolean {
  try {
    return getOperationAST(parse(query), operationName ?? undefined)?.operation === OperationTypeNode.SUBSCRIPTION;
  } catch {
    // Not parseable: HTTP answers with the parse error.
    return false;
  }
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'number';
}

/**
 * One subscription over its own graphql-ws socket, authenticated with this run's headers. A socket the
 * gateway closes (a wrong key: 4403) ends the run with an error in the result pane; only a dropped
 * connection or a restarting gateway is retried, a few times. An iterator object rather than a generator,
 * so GraphiQL's stop (return()) closes the socket at once instead of waiting for the next event.
 */
type Result = FormattedExecutionResult<Record<string, unknown>, unknown>;

function subscribe(params: FetcherParams, headers: Record<string, string>): AsyncIterableIterator<Result> {
  const client = createClient({
    url: subscriptionUrl.href,
    connectionParams: headers,
    retryAttempts: 3,
    shouldRetry: (event) => !isCloseEvent(event) || event.code === 1001 || event.code === 1006,
  });
  const results = client.iterate<Record<string, unknown>, unknown>({ query: params.query, variables: params.variables ?? {}, operationName: params.operationName ?? null });
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    void results.return?.();
    void client.dispose();
  };
  const end: IteratorReturnResult<undefined> = { done: true, value: undefined };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (finished) return end;
      try {
        const result = await results.next();
        if (result.done) finish();
        return result;
      } catch (err) {
        finish();
        const message = isCloseEvent(err) ? socketClosedMessage(err.code, err.reason) : socketClosedMessage(undefined, err instanceof Error ? err.message : undefined);
        return { done: false, value: { errors: [{ message, extensions: { closeCode: isCloseEvent(err) ? err.code : null } }] } };
      }
    },
    async return() {
      finish();
      return end;
    },
  };
}

const httpFetcher = createGraphiQLFetcher({ url: graphqlUrl.href });

/** Every request of every tab carries the key field's key (unless the tab's headers set their own). */
function createFetcher(apiKey: string): Fetcher {
  return (params, opts) => {
    const headers = withApiKey(cleanHeaders(opts?.headers), apiKey);
    // Results as they come off the wire (formatted errors); GraphiQL shows them as JSON either way.
    if (isSubscription(params.query, params.operationName)) return subscribe(params, headers) as AsyncIterable<ExecutionResult>;
    return httpFetcher(params, { ...opts, headers });
  };
}

/** The key field's value: this browser tab's session, or the browser's storage when asked to remember it. */
const KEY_STORAGE = 'exotel-gateway.graphiql.api-key';
function storedKey(): { key: string; remember: boolean } {
  const remembered = localStorage.getItem(KEY_STORAGE);
  if (remembered !== null) return { key: remembered, remember: true };
  return { key: sessionStorage.getItem(KEY_STORAGE) ?? '', remember: false };
}
function storeKey(key: string, remember: boolean): void {
  localStorage.removeItem(KEY_STORAGE);
  sessionStorage.removeItem(KEY_STORAGE);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_STORAGE, key);
}

function ApiKeyBar(props: { apiKey: string; remember: boolean; onChange(key: string, remember: boolean): void }) {
  return (
    <form className="gateway-key" onSubmit={(event) => event.preventDefault()}>
      <label>
        API key{' '}
        <input
          type="password"
          name="api-key"
          autoComplete="off"
          spellCheck={false}
          data-testid="api-key"
          placeholder="the secret part of name:secret:scopes (sent as Authorization: Bearer …)"
          value={props.apiKey}
          onChange={(event) => props.onChange(event.target.value, props.remember)}
        />
      </label>
      <label>
        <input type="checkbox" data-testid="remember-key" checked={props.remember} onChange={(event) => props.onChange(props.apiKey, event.target.checked)} />{' '}
        remember in this browser
      </label>
      <span className="gateway-key-hint">Sent by every tab; kept across reloads of this tab{props.remember ? ' and of the browser' : ''}.</span>
    </form>
  );
}

type Mode = 'SIMULATOR' | 'LIVE' | undefined;

/** The mode the server stamped into the page, else what `{ gateway { mode } }` says; undefined if unknown. */
function useGatewayMode(): Mode {
  const stamped = document.documentElement.dataset.gatewayMode;
  const [mode, setMode] = useState<Mode>(stamped === 'SIMULATOR' || stamped === 'LIVE' ? stamped : undefined);
  useEffect(() => {
    if (mode) return;
    const controller = new AbortController();
    fetch(graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ gateway { mode } }' }),
      signal: controller.signal,
    })
      .then((res) => res.json() as Promise<{ data?: { gateway?: { mode?: string } } }>)
      .then((body) => {
        const found = body.data?.gateway?.mode;
        if (found === 'SIMULATOR' || found === 'LIVE') setMode(found);
      })
      // The banner is a courtesy: a gateway that cannot answer yet (auth, older schema) just shows none.
      .catch(() => undefined);
    return () => controller.abort();
  }, [mode]);
  return mode;
}

function SimulatorBanner() {
  return (
    <div className="gateway-banner" role="status" data-testid="simulator-banner">
      <strong>Simulator mode</strong>: this gateway talks to its built-in Exotel simulator. No real calls are placed and
      no SMS is sent.
    </div>
  );
}

function App() {
  const mode = useGatewayMode();
  const [{ key, remember }, setKeyState] = useState(storedKey);
  // A new fetcher when the key changes makes GraphiQL fetch the schema again, now with the key.
  const fetcher = useMemo(() => createFetcher(key), [key]);
  const onKeyChange = (nextKey: string, nextRemember: boolean) => {
    storeKey(nextKey, nextRemember);
    setKeyState({ key: nextKey, remember: nextRemember });
  };
  return (
    <div className="gateway-page">
      {mode === 'SIMULATOR' ? <SimulatorBanner /> : null}
      <ApiKeyBar apiKey={key} remember={remember} onChange={onKeyChange} />
      <div className="gateway-graphiql">
        <GraphiQL
          fetcher={fetcher}
          defaultQuery={defaultQuery()}
          defaultHeaders={DEFAULT_HEADERS}
          defaultEditorToolsVisibility="headers"
          shouldPersistHeaders={false}
        >
          <GraphiQL.Logo>Exotel GraphQL gateway</GraphiQL.Logo>
        </GraphiQL>
      </div>
    </div>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('GraphiQL: #root element missing from index.html');
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
