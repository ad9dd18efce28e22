/**
 * INTROSPECTION = off | authenticated | on, on HTTP and graphql-ws. The refusal names the variable an
 * operator can change, never Apollo's "pass introspection: true to ApolloServer".
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startGateway } from '../helpers/gateway.js';
import { ackedSocket, type RawSocket } from '../hardening/ws-raw.js';

const SECRET = 'introspect-secret-0123456789';
const KEYS = `tools:${SECRET}:read`;
const bearer = { authorization: `Bearer ${SECRET}` };
const SCHEMA_QUERY = '{ __schema { queryType { name } } }';
const sockets: RawSocket[] = [];
afterAll(() => sockets.forEach((s) => s.ws.close()));

async function overWs(wsUrl: string, authorization: string | undefined, query: string) {
  const socket = await ackedSocket(wsUrl, authorization);
  sockets.push(socket);
  socket.send({ type: 'subscribe', id: 'i', payload: { query } });
  return socket.next((m) => m.id === 'i');
}

describe('INTROSPECTION', () => {
  it('defaults to on in development, off with NODE_ENV=production, and rejects other values naming the variable', () => {
    expect(loadConfig({}).introspection).toBe('on');
    expect(loadConfig({ NODE_ENV: 'production' }).introspection).toBe('off');
    expect(loadConfig({ NODE_ENV: 'production', INTROSPECTION: 'authenticated' }).introspection).toBe('authenticated');
    expect(() => loadConfig({ INTROSPECTION: 'yes' })).toThrow(ConfigError);
    expect(() => loadConfig({ INTROSPECTION: 'yes' })).toThrow(/INTROSPECTION/);
  });

  it('off (the production default): refused on both transports with a message naming INTROSPECTION; __typename still works', async () => {
    const gw = await startGateway({ NODE_ENV: 'production', GATEWAY_API_KEYS: KEYS });
    const http = await gw.gql(SCHEMA_QUERY, undefined, bearer);
    expect(http.status).toBe(400);
    expect(http.body.data).toBeUndefined();
    expect(http.body.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'INTROSPECTION' });
    expect(http.body.errors?.[0]?.message).toContain('INTROSPECTION=off');
    expect(http.body.errors?.[0]?.message).not.toMatch(/ApolloServer/);
    const typename = await gw.gql('{ __typename }', undefined, bearer);
    expect(typename.body).toEqual({ data: { __typename: 'Query' } });
    const ws = await overWs(gw.wsUrl, bearer.authorization, SCHEMA_QUERY);
    expect(ws.type).toBe('error');
    expect(ws.payload[0].message).toContain('INTROSPECTION=off');
  });

  it('authenticated: any valid key may introspect on both transports (what GraphiQL needs in production)', async () => {
    const gw = await startGateway({ NODE_ENV: 'production', INTROSPECTION: 'authenticated', GATEWAY_API_KEYS: KEYS });
    const http = await gw.gql(SCHEMA_QUERY, undefined, bearer);
    expect(http.body).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
    const noKey = await gw.gql(SCHEMA_QUERY);
    expect(noKey.status).toBe(401);
    expect(noKey.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const ws = await overWs(gw.wsUrl, bearer.authorization, SCHEMA_QUERY);
    expect(ws.type).toBe('next');
    expect(ws.payload.data.__schema.queryType.name).toBe('Query');
  });

  it('authenticated on a gateway without client keys: refused, saying why', async () => {
    const gw = await startGateway({ INTROSPECTION: 'authenticated' });
    const http = await gw.gql(SCHEMA_QUERY);
    expect(http.status).toBe(400);
    expect(http.body.errors?.[0]?.message).toContain('INTROSPECTION=authenticated');
    const ws = await overWs(gw.wsUrl, undefined, SCHEMA_QUERY);
    expect(ws.type).toBe('error');
    expect(ws.payload[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'INTROSPECTION' });
  });

  it('on: allowed in production too, also through a fragment', async () => {
    const gw = await startGateway({ NODE_ENV: 'production', INTROSPECTION: 'on' });
    const http = await gw.gql('query { ...S } fragment S on Query { __type(name: "Call") { name } }');
    expect(http.body).toEqual({ data: { __type: { name: 'Call' } } });
  });

  it('off catches introspection hidden in a fragment', async () => {
    const gw = await startGateway({ INTROSPECTION: 'off' });
    const http = await gw.gql('query { ...S } fragment S on Query { __type(name: "Call") { name } }');
    expect(http.status).toBe(400);
    expect(http.body.errors?.[0]?.extensions?.reason).toBe('INTROSPECTION');
  });
});
