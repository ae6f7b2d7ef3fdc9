// A TCP load balancer with no stickiness: each new connection goes to the
// next server in turn, skipping one that refuses (a dead node), like a
// plain L4 balancer with passive health checks.

import net from 'node:net';

import { listenLoopback, track } from './proxy.mjs';

export async function startBalancer(urls) {
  const targets = urls.map((u) => new URL(u));
  const pairs = new Set();
  let next = 0;
  let accepted = 0;

  const server = net.createServer((client) => {
    accepted += 1;
    const start = next++;
    client.pause();
    const attempt = (i) => {
      if (i >= targets.length) {
        client.destroy();
        return;
      }
      const t = targets[(start + i) % targets.length];
      const up = net.connect(Number(t.port), t.hostname);
      let connected = false;
      up.once('error', () => {
        if (!connected) attempt(i + 1);
      });
      up.once('connect', () => {
        connected = true;
        track(pairs, client, up);
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    async close() {
      for (const { client, up } of pairs) {
        client.destroy();
        up.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}
