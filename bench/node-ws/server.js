// Node comparison server for bench/run.sh, the same shape as
// tandem-reference: `GET /ws` upgrades with `ws`, `GET /sse` holds a
// `text/event-stream` response from plain `http`, and `POST /api/publish`
// serializes one frame and writes it to every subscriber. Each subscriber
// gets a welcome first. No sessions, history, auth or metrics; one process
// (one core), as a plain `ws` server runs. Loopback only.
//
//   node server.js --port 9092

'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(option('--port', '9092'));
// A subscriber with more than this many frames unsent is dropped, as the
// reference drops one whose 256-slot queue is full.
const QUEUE = 256;
const MAX_BODY = 1 << 20;
const WELCOME = '{"type":"welcome"}';

const wsSubs = new Set();
const sseSubs = new Set();
let seq = 0;

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });

const server = http.createServer({ noDelay: true }, (req, res) => {
  const path = req.url.split('?', 1)[0];
  if (req.method === 'GET' && path === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`event: welcome\ndata: ${WELCOME}\n\n`);
    sseSubs.add(res);
    res.on('close', () => sseSubs.delete(res));
  } else if (req.method === 'POST' && path === '/api/publish') {
    publish(req, res);
  } else {
    res.writeHead(404).end();
  }
});

server.on('upgrade', (req, socket, head) => {
  if (req.url.split('?', 1)[0] !== '/ws') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    wsSubs.add(ws);
    ws.on('close', () => wsSubs.delete(ws));
    ws.on('error', () => wsSubs.delete(ws));
    ws.send(WELCOME);
  });
});

function publish(req, res) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return;
    let v;
    try {
      v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    seq += 1;
    const frame = JSON.stringify({
      type: 'message',
      seq,
      id: `m_${seq.toString(16).padStart(16, '0')}`,
      channel: v.channel,
      event: v.event,
      data: v.data,
      ts: Date.now(),
    });
    // Serialized once per transport; every subscriber gets the same bytes.
    const text = Buffer.from(frame);
    const sse = Buffer.from(`id: ${seq}\nevent: message\ndata: ${frame}\n\n`);
    const wsLimit = QUEUE * text.length;
    const sseLimit = QUEUE * sse.length;
    let recipients = 0;
    for (const ws of wsSubs) {
      if (ws.bufferedAmount > wsLimit) {
        wsSubs.delete(ws);
        ws.terminate();
        continue;
      }
      ws.send(text, { binary: false });
      recipients += 1;
    }
    for (const s of sseSubs) {
      if (s.writableLength > sseLimit) {
        sseSubs.delete(s);
        s.destroy();
        continue;
      }
      s.write(sse);
      recipients += 1;
    }
    const answer = JSON.stringify({ recipients });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  });
}

// The same accept backlog as Tandem and the reference.
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  console.log(`node-ws listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
