/**
 * `npm start`, as a process manager or a terminal runs it: a SIGTERM sent to npm's own process reaches the
 * gateway, which shuts down as it does under `node dist/main.js` and leaves nothing listening. (npm passes
 * the signal to the script's shell; a shell that waited on tsx instead of becoming it kept the signal, and
 * the gateway went on running as an orphan.)
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('npm start', () => {
  it('stops the gateway when npm itself gets SIGTERM', async () => {
    // The README's start command with no settings of its own: the simulator, memory storage, a free port.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(GATEWAY_|EXOTEL_|REDIS_|WEBHOOK_|PUBLIC_URL|METRICS_PORT)/.test(k)));
    const npm = spawn('npm', ['start', '--silent'], { cwd: REPO_ROOT, env: { ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    npm.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    npm.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const look = () => {
          const line = out.split('\n').find((l) => l.includes('"gateway listening"'));
          if (line) resolve((JSON.parse(line) as { url: string }).url);
        };
        npm.stdout.on('data', look);
        void exited.then(() => reject(new Error(`npm start ended before listening:\n${out}`)));
      });
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });

      npm.kill('SIGTERM');
      await exited;
      // The gateway itself shut down (not only npm), and its port is free.
      await expect.poll(() => out.includes('"gateway stopped"'), { timeout: 10_000 }).toBe(true);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      // Its own process group: whatever is left of it (a gateway that kept running) goes too.
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }, 60_000);
});
