// A real `tandem` process on a free loopback port, with its own config and
// log file in a temporary directory, for browser tests.
//
// The binary is `$TANDEM_BIN`, or `target/debug/tandem` of this checkout
// (scripts/test.sh builds it before the browser suites run).

import { spawn } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const API_KEY = 'browser-test-api-key-0123456789';
const START_DEADLINE_MS = 20_000;

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function tandemBin() {
  const bin = process.env.TANDEM_BIN ?? join(repo, 'target', 'debug', 'tandem');
  if (!existsSync(bin)) {
    throw new Error(`no tandem binary at ${bin}: run \`cargo build -p tandem-server --bin tandem\` first`);
  }
  return bin;
}

/** A TOML literal for a JS value (strings, numbers, booleans, arrays). */
export function toml(value) {
  if (Array.isArray(value)) return `[${value.map(toml).join(', ')}]`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

/**
 * Starts tandem with `config` (`{section: {key: value}}`, merged over a
 * loopback bind on port 0 and the test API key) and resolves once it
 * listens. `logs` holds every JSON log line it printed, parsed. `env` adds
 * environment variables (e.g. `TANDEM_BACKEND__COMMAND_URL`: the last
 * layer of the configuration, over the file); the test runner's own
 * `TANDEM_*` variables are never passed on. `ca` (PEM) is the authority a
 * TLS server's certificate (`server.tls` in `config`) chains to: the url
 * is then `https://` and `api()` trusts it.
 */
export async function startTandem(config = {}, { env: extraEnv = {}, ca = null } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-browser-'));
  const merged = {
    server: { bind: '127.0.0.1:0' },
    auth: { api_keys: [API_KEY] },
    logging: { file: join(dir, 'tandem.log') },
  };
  for (const [section, keys] of Object.entries(config)) {
    merged[section] = { ...(merged[section] ?? {}), ...keys };
  }
  const text = Object.entries(merged)
    .map(([section, keys]) => `[${section}]\n${Object.entries(keys).map(([k, v]) => `${k} = ${toml(v)}`).join('\n')}\n`)
    .join('\n');
  const configPath = join(dir, 'tandem.toml');
  writeFileSync(configPath, text);

  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TANDEM_'))),
    ...extraEnv,
  };
  const child = spawn(tandemBin(), ['--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const stderr = [];
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));

  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`tandem did not listen within ${START_DEADLINE_MS} ms:\n${stderr.join('\n')}`)), START_DEADLINE_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tandem exited with ${code} before listening:\n${stderr.join('\n')}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(event);
      if (event.message === 'Tandem listening' && typeof event.addr === 'string') {
        clearTimeout(timer);
        resolveUrl(`${merged['server.tls']?.cert_file ? 'https' : 'http'}://${event.addr}`);
      }
    });
  });

  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return {
    url,
    dir,
    logs,
    stderr,
    /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const status = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return status;
    },
    /** SIGKILL: the process vanishes without a goodbye. */
    async kill() {
      child.kill('SIGKILL');
      return exited;
    },
    /** POSTs JSON to the backend API with the test key. */
    async api(path, body) {
      if (url.startsWith('https:')) return apiOverTls(url + path, body, ca);
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    },
  };
}

/** `api()` over https, trusting `ca` (fetch has no per-request CA). */
function apiOverTls(target, body, ca) {
  const payload = JSON.stringify(body);
  return new Promise((resolveRes, reject) => {
    const req = httpsRequest(
      target,
      {
        method: 'POST',
        ca: ca ?? undefined,
        timeout: 10_000,
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          try {
            resolveRes({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) });
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${target} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
