/**
 * The storage's Redis connections logged as one link: one line when the first fails, one when all are back.
 * Driven by stand-in connections (the events and state ioredis and node-redis expose), since the order in
 * which three real connections notice an outage and come back is up to the machine; the real thing is
 * test/scale/redis-outage-logs.test.ts.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createConnectionLog } from '../../src/storage/redis-connection.js';
import type { StorageLogger } from '../../src/storage/options.js';

/** An ioredis-like connection: `status`, 'error' and 'ready'. */
class Connection extends EventEmitter {
  status = 'ready';
  fail() {
    this.status = 'reconnecting';
    this.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  }
  ready() {
    this.status = 'ready';
    this.emit('ready');
  }
}

function setup() {
  const lines: Array<{ level: string; msg: string }> = [];
  const at = (level: string) => (_fields: unknown, msg?: string) => void lines.push({ level, msg: String(msg) });
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as unknown as StorageLogger;
  const log = createConnectionLog('redis://127.0.0.1:6399', logger);
  const [commands, reader, cache] = [new Connection(), new Connection(), new Connection()];
  type Watched = Parameters<typeof log.watch>[0];
  log.watch(commands as unknown as Watched, 'command');
  log.watch(reader as unknown as Watched, 'events');
  log.watch(cache as unknown as Watched, 'cache');
  return { lines, commands, reader, cache };
}

describe('Redis connection log', () => {
  it('logs the outage at the first failure and the recovery once every connection is ready again', () => {
    const { lines, commands, reader, cache } = setup();
    commands.fail();
    reader.fail();
    cache.fail();
    commands.ready();
    reader.ready();
    expect(lines).toEqual([{ level: 'warn', msg: 'redis connection failed; retrying' }]);
    cache.ready();
    expect(lines.map((l) => l.msg)).toEqual(['redis connection failed; retrying', 'redis connection restored']);
  });

  it('waits for a connection still reconnecting that has not reported an error yet', () => {
    const { lines, commands, reader, cache } = setup();
    cache.fail();
    // The command connection lost its socket too, but has not said so by an error yet.
    commands.status = 'reconnecting';
    cache.ready();
    expect(lines.map((l) => l.msg)).toEqual(['redis connection failed; retrying']);
    commands.ready();
    expect(lines.map((l) => l.msg)).toEqual(['redis connection failed; retrying', 'redis connection restored']);
    // A connection never asked to connect, or closed on purpose, holds nothing up.
    reader.status = 'end';
    cache.fail();
    cache.ready();
    expect(lines.filter((l) => l.msg === 'redis connection restored')).toHaveLength(2);
  });
});
