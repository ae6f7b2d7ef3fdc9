// A TCP proxy on a free loopback port in front of a tandem, so that tests
// can cut real connections (both sockets destroyed, as a network loss
// would), refuse new ones, retarget a restarted server, or let a WebSocket
// upgrade through and then pass nothing (a proxy that breaks WebSockets).

import net from 'node:net';

/** Listens on a free loopback port; resolves to it. */
export async function listenLoopback(server) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server.address().port;
}

/** Adds `client` ↔ `up` to `pairs`; either side's end or error destroys both and removes them. */
export function track(pairs, client, up) {
  const pair = { client, up };
  pairs.add(pair);
  const end = () => {
    client.destroy();
    up.destroy();
    pairs.delete(pair);
  };
  for (const s of [client, up]) {
    s.on('error', end);
    s.on('close', end);
  }
}

export async function startProxy(target) {
  let upstream = new URL(target);
  const pairs = new Set();
  let refusing = false;
  let stalling = false;

  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const up = net.connect(Number(upstream.port), upstream.hostname);
    track(pairs, client, up);
    if (!stalling) {
      client.pipe(up);
      up.pipe(client);
      return;
    }
    client.once('data', (first) => {
      up.write(first);
      client.pipe(up);
      if (!/^GET \/ws[?\s]/.test(first.toString('latin1'))) {
        up.pipe(client);
        return;
      }
      // Pass the 101 response head, then nothing at all.
      let head = Buffer.alloc(0);
      let passed = false;
      up.on('data', (chunk) => {
        if (passed) return;
        head = Buffer.concat([head, chunk]);
        const i = head.indexOf('\r\n\r\n');
        if (i >= 0) {
          client.write(head.subarray(0, i + 4));
          passed = true;
        }
      });
    });
  });
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    /** Connections open through the proxy now. */
    get open() {
      return pairs.size;
    },
    /** Destroys every connection through the proxy, both sides. */
    cut() {
      for (const { client, up } of pairs) {
        client.destroy();
        up.destroy();
      }
      pairs.clear();
    },
    /**
     * Open connections stop passing the server's bytes (the client's still
     * reach the server): a link that died without closing.
     */
    freeze() {
      for (const { client, up } of pairs) up.unpipe(client);
    },
    /** New connections are accepted and closed at once. */
    refuse(on = true) {
      refusing = on;
    },
    /** New WebSocket upgrades complete, then nothing passes either way. */
    stallWebSockets(on = true) {
      stalling = on;
    },
    retarget(url) {
      upstream = new URL(url);
    },
    async close() {
      this.cut();
      await new Promise((r) => server.close(r));
    },
  };
}
