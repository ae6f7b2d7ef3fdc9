// The tic-tac-toe game backend of examples/tictactoe/node-backend, as a
// real Node process on a free loopback port.

import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const GAME_SERVER = join(repo, 'examples', 'tictactoe', 'node-backend', 'server.mjs');
const START_DEADLINE_MS = 10_000;

/**
 * Starts the game backend publishing through `tandemUrl` with `apiKey`,
 * verifying Tandem's signatures with `secret`; resolves once it listens
 * (its first stdout line is `listening <port>`).
 */
export async function startGameBackend({ tandemUrl, apiKey, secret }) {
  const env = { ...process.env, PORT: '0', TANDEM_URL: tandemUrl, TANDEM_API_KEY: apiKey, TANDEM_BACKEND_SECRET: secret };
  const child = spawn(process.execPath, [GAME_SERVER], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = [];
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const port = await new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`the game backend did not listen:\n${stderr.join('\n')}`)), START_DEADLINE_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the game backend exited with ${code}:\n${stderr.join('\n')}`));
    });
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const m = /^listening (\d+)$/.exec(line);
      if (m) resolvePort(Number(m[1]));
      else reject(new Error(`unexpected first line from the game backend: ${line}`));
    });
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    commandUrl: `${url}/tandem/command`,
    eventsUrl: `${url}/tandem/events`,
    stderr,
    /** The lifecycle events it received (the last 200, each id once). */
    async events() {
      const res = await fetch(`${url}/events`);
      if (res.status !== 200) throw new Error(`GET /events answered ${res.status}`);
      return res.json();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
  };
}
