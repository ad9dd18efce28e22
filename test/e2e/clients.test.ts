/**
 * The GraphQL clients people already use, with their default settings, against the real gateway:
 * urql (short queries as GET), Apollo Client (POST), graphql-request (POST) and plain fetch. CSRF
 * prevention must let each of them through when it sends its key, and still refuse a simple GET.
 */
import { ApolloClient, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { Client as UrqlClient, cacheExchange, fetchExchange, gql as urqlGql } from '@urql/core';
import { GraphQLClient, gql as requestGql } from 'graphql-request';
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const secret = 'clients-secret-0123456789';
const authorization = `Bearer ${secret}`;
let gw: TestGateway;
let seededSid: string;

/** A fetch that records the method of every request it passes on. */
function recordingFetch(methods: string[]): typeof fetch {
  return (input, init) => {
    methods.push(init?.method ?? (input instanceof Request ? input.method : 'GET'));
    return fetch(input, init);
  };
}

beforeAll(async () => {
  gw = await startGateway({ GATEWAY_API_KEYS: `app:${secret}:read+write` });
  const res = await gw.gql<{ calls: { nodes: Array<{ sid: string }> } }>('{ calls(first: 1) { nodes { sid } } }', {}, { authorization });
  const sid = res.body.data?.calls.nodes[0]?.sid;
  if (!sid) throw new Error(`the simulator has no seeded call: ${JSON.stringify(res.body)}`);
  seededSid = sid;
});

describe('GraphQL clients with their defaults', () => {
  it('urql sends a short query as GET with the key, and gets data', async () => {
    const methods: string[] = [];
    const client = new UrqlClient({
      url: `${gw.url}/graphql`,
      exchanges: [cacheExchange, fetchExchange],
      fetchOptions: { headers: { authorization } },
      fetch: recordingFetch(methods),
    });
    const result = await client.query(urqlGql`query One($sid: ID!) { call(sid: $sid) { sid status } }`, { sid: seededSid }).toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data.call.sid).toBe(seededSid);
    expect(methods).toEqual(['GET']);
  });

  it('urql runs a mutation (POST) with the key', async () => {
    const client = new UrqlClient({ url: `${gw.url}/graphql`, exchanges: [fetchExchange], fetchOptions: { headers: { authorization } } });
    const result = await client
      .mutation(urqlGql`mutation { sendSms(input: { from: "08039591111", to: "9812345670", body: "from urql" }) { sms { sid status } } }`, {})
      .toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data.sendSms.sms.sid).toEqual(expect.any(String));
  });

  it('Apollo Client (core, no React) queries and mutates with the key', async () => {
    const methods: string[] = [];
    const client = new ApolloClient({
      link: new HttpLink({ uri: `${gw.url}/graphql`, headers: { authorization }, fetch: recordingFetch(methods) }),
      cache: new InMemoryCache(),
    });
    const query = await client.query<{ call: { sid: string; status: string } }>({
      query: apolloGql`query One($sid: ID!) { call(sid: $sid) { sid status } }`,
      variables: { sid: seededSid },
    });
    expect(query.error).toBeUndefined();
    expect(query.data?.call.sid).toBe(seededSid);
    const mutation = await client.mutate<{ sendSms: { sms: { sid: string } } }>({
      mutation: apolloGql`mutation { sendSms(input: { from: "08039591111", to: "9812345670", body: "from apollo" }) { sms { sid } } }`,
    });
    expect(mutation.data?.sendSms.sms.sid).toEqual(expect.any(String));
    expect(methods).toEqual(['POST', 'POST']);
    client.stop();
  });

  it('graphql-request queries with the key', async () => {
    const client = new GraphQLClient(`${gw.url}/graphql`, { headers: { authorization } });
    const data = await client.request<{ call: { sid: string } }>(requestGql`query One($sid: ID!) { call(sid: $sid) { sid } }`, { sid: seededSid });
    expect(data.call.sid).toBe(seededSid);
  });

  it('plain fetch: a GET carrying the key is answered', async () => {
    const url = `${gw.url}/graphql?query=${encodeURIComponent('{ gateway { mode } }')}`;
    const ok = await fetch(url, { headers: { authorization } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).data.gateway.mode).toBe('SIMULATOR');
  });
});

describe('CSRF prevention', () => {
  it('still refuses a GET with neither an Authorization nor a preflight header', async () => {
    const res = await fetch(`${gw.url}/graphql?query=${encodeURIComponent('{ gateway { mode } }')}`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/CSRF/i);
  });

  it('still refuses a text/plain POST, what a cross-site form can send', async () => {
    const form = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ query: '{ gateway { mode } }' }),
    });
    expect(form.status).toBeGreaterThanOrEqual(400);
    expect(await form.text()).not.toContain('"mode"');
  });
});
