/**
 * The self-hosted GraphiQL page (GET /graphiql). Bundled by scripts/build-graphiql.mjs; everything it
 * loads, Monaco's workers included, comes from the gateway itself.
 */
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import type { Environment } from 'monaco-editor';
import 'graphiql/style.css';
import './app.css';
import { cleanHeaders, DEFAULT_HEADERS } from './headers.js';

/** Worker file names, set at build time (they carry content hashes). */
declare const GRAPHIQL_WORKERS: { editor: string; json: string; graphql: string };

const DEFAULT_QUERY = `# Exotel GraphQL gateway
#
# ▶ (or Ctrl-Enter inside an operation) runs it.
# Docs (book icon, top left) describe every field.

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
  call(sid: "paste-a-call-sid") {
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

subscription CallEvents {
  callEvents {
    id
    callSid
    status
    at
    source
  }
}
`;

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

const baseFetcher = createGraphiQLFetcher({ url: graphqlUrl.href, subscriptionUrl: subscriptionUrl.href });

const fetcher: Fetcher = (params, opts) => baseFetcher(params, { ...opts, headers: cleanHeaders(opts?.headers) });

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
  return (
    <div className="gateway-page">
      {mode === 'SIMULATOR' ? <SimulatorBanner /> : null}
      <div className="gateway-graphiql">
        <GraphiQL
          fetcher={fetcher}
          defaultQuery={DEFAULT_QUERY}
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
