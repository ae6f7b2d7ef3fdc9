// TLS (`server.tls`): the browser client over `wss://` and over SSE on
// `https://`, with a certificate made for the test (openssl) and Chromium
// told to accept it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/chromium.mjs';
import { connectedOver, openPage, publishMany, range, startClient, until } from './lib/client.mjs';
import { startTandem } from './lib/tandem.mjs';

let browser;
let certDir;
before(async () => {
  browser = await launchChromium();
  certDir = mkdtempSync(join(tmpdir(), 'tandem-tls-'));
  // A self-signed certificate for 127.0.0.1, valid for a day.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore', timeout: 10_000 });
});
after(async () => {
  await browser?.close();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

for (const mode of ['websocket', 'sse']) {
  test(`the browser client connects and receives over TLS (${mode})`, async () => {
    const cert = join(certDir, 'cert.pem');
    const tandem = await startTandem(
      { 'server.tls': { cert_file: cert, key_file: join(certDir, 'key.pem') } },
      { ca: readFileSync(cert) },
    );
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      assert.match(tandem.url, /^https:\/\//);
      const page = await openPage(context, tandem.url);
      await startClient(page, { playerId: 'alice', channels: ['room:tls'], mode, reconnect: { baseDelayMs: 20 } });
      await connectedOver(page, [mode]);
      await publishMany(tandem, 'room:tls', 3);
      await until(page, () => window.seqs.length >= 3);
      assert.deepEqual(await page.evaluate(() => window.seqs), range(3));
      assert.equal(await page.evaluate(() => location.protocol), 'https:');
      await page.evaluate(() => window.c.close());
    } finally {
      await context.close();
      await tandem.stop();
    }
  });
}
