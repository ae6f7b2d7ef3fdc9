// The live monitoring page in Debian's Chromium: after real WebSocket, SSE,
// API and failed-auth traffic it shows the same numbers as the JSON
// endpoints, honours monitoring.token (login form and ?token=) without the
// token reaching any log, and leaves a screenshot in target/test-artifacts/.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { artifactPath, launchChromium } from './lib/chromium.mjs';
import { startTandem } from './lib/tandem.mjs';

const TOKEN = 'operator-token-5f2c9e7a1b';
const DEADLINE_MS = 15_000;

async function monitoringJson(url, path) {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(res.status === 200 || res.status === 503, `${path}: ${res.status}`);
  return res.json();
}

/** Polls `probe` until it returns without throwing, at most DEADLINE_MS. */
async function eventually(what, probe) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} within ${DEADLINE_MS} ms: ${err.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Opens connections from a page of the tandem origin (development auth). */
async function openClients(page) {
  return page.evaluate(async () => {
    const wsUrl = (q) => `${location.origin.replace(/^http/, 'ws')}/ws?${q}`;
    const welcomeWs = (q) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl(q));
        ws.onmessage = (m) => {
          const f = JSON.parse(m.data);
          if (f.type === 'welcome') resolve({ ws, session: f.session_id });
        };
        ws.onerror = () => reject(new Error(`WebSocket ${q} failed`));
      });
    const welcomeSse = (q) =>
      new Promise((resolve, reject) => {
        const es = new EventSource(`/sse?${q}`);
        es.addEventListener('welcome', (m) => resolve({ es, session: JSON.parse(m.data).session_id }));
        es.onerror = () => reject(new Error(`SSE ${q} failed`));
      });
    const alice = await welcomeWs('player_id=alice');
    await welcomeWs('player_id=bob');
    await welcomeSse('player_id=carol');
    const dave = await welcomeWs('player_id=dave');
    await welcomeSse(`player_id=dave&session_id=${encodeURIComponent(dave.session)}`);
    // Kept alive for the rest of the test.
    window.clients = { alice, dave };
    return { alice: alice.session };
  });
}

function text(page, field) {
  return page.locator(`[data-field="${field}"]`).first().textContent();
}

function value(page, field) {
  return page.locator(`[data-field="${field}"]`).first().getAttribute('data-value');
}

test('the live page shows what the JSON endpoints say, behind the operator token', async () => {
  const tandem = await startTandem({ monitoring: { token: TOKEN } });
  const browser = await launchChromium();
  try {
    const clientPage = await browser.newPage();
    await clientPage.goto(`${tandem.url}/health/live`);
    await openClients(clientPage);

    const published = await tandem.api('/api/players/alice/messages', { event: 'hello', data: { n: 1 } });
    assert.equal(published.status, 200, JSON.stringify(published.body));
    const refused = await fetch(`${tandem.url}/api/players/alice/messages`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong-key', 'content-type': 'application/json' },
      body: '{"event":"x","data":{}}',
    });
    assert.equal(refused.status, 401);

    // Opened with ?token=: the token leaves the address bar at once.
    const page = await browser.newPage({ viewport: { width: 1400, height: 760 } });
    await page.goto(`${tandem.url}/monitoring/?token=${TOKEN}`);
    await eventually('the first update', async () => {
      assert.ok(Number(await page.getAttribute('body', 'data-updates')) >= 1);
    });
    assert.equal(new URL(page.url()).search, '', 'the token is dropped from the address bar');
    assert.equal(await page.isVisible('#login'), false);

    await eventually('the page matches /monitoring/connections', async () => {
      const c = await monitoringJson(tandem.url, '/monitoring/connections');
      assert.equal(c.connections_by_transport.websocket, 3);
      assert.equal(c.connections_by_transport.sse, 2);
      assert.equal(c.connection_distribution.dual_connection_players, 1);
      const expected = {
        websocket_connections: c.connections_by_transport.websocket,
        sse_connections: c.connections_by_transport.sse,
        dual_connection_players: c.connection_distribution.dual_connection_players,
        total_players: c.connection_distribution.total_players,
        websocket_only_players: c.connection_distribution.websocket_only_players,
        sse_only_players: c.connection_distribution.sse_only_players,
        sessions: c.sessions,
      };
      for (const [field, n] of Object.entries(expected)) {
        assert.equal(await text(page, field), String(n), field);
      }
    });

    await eventually('the page matches /monitoring/connection-health', async () => {
      const h = await monitoringJson(tandem.url, '/monitoring/connection-health');
      assert.equal(await text(page, 'health_percentage'), `${h.overall_health.health_percentage.toFixed(1)}%`);
      assert.equal(await text(page, 'total_connections'), String(h.overall_health.total_connections));
      assert.equal(await text(page, 'healthy_connections'), String(h.overall_health.healthy_connections));
      assert.equal(
        await text(page, 'last_hour_health_percentage'),
        `${h.health_trends.last_hour_health_percentage.toFixed(1)}%`,
      );
    });

    await eventually('the page matches /monitoring/performance', async () => {
      const p = await monitoringJson(tandem.url, '/monitoring/performance');
      assert.ok(p.message_delivery.successful_deliveries >= 1, 'the publish was delivered');
      for (const q of ['p50', 'p95', 'p99']) {
        const d = `${q}_delivery_time_ms`;
        assert.equal(Number(await value(page, d)), p.message_delivery[d], d);
        for (const t of ['websocket', 'sse']) {
          const e = `${q}_${t}_establishment_ms`;
          assert.ok(p.connection_establishment[e] > 0, `${e} measured`);
          assert.equal(Number(await value(page, e)), p.connection_establishment[e], e);
        }
      }
      assert.equal(await text(page, 'successful_deliveries'), String(p.message_delivery.successful_deliveries));
    });

    await eventually('the page matches /monitoring/errors', async () => {
      const e = await monitoringJson(tandem.url, '/monitoring/errors');
      assert.ok(e.total_errors_last_hour >= 1, 'the refused API key is an error');
      assert.equal(await text(page, 'total_errors_last_hour'), String(e.total_errors_last_hour));
      const chart = page.locator('#errors-chart');
      assert.equal(await chart.getAttribute('data-bars'), String(e.per_minute.length));
      const total = e.per_minute.reduce((s, m) => s + m.count, 0);
      assert.equal(await chart.getAttribute('data-total'), String(total));
      assert.ok(total >= 1);
      assert.equal(await page.locator('#errors-chart rect.bar:not(.zero)').count() >= 1, true);
      const rows = page.locator('#recent-errors tr.error-row');
      assert.equal(await rows.count(), Math.min(10, e.recent_errors.length));
      assert.equal(await rows.first().locator('td').nth(3).textContent(), e.recent_errors[0].message);
      assert.match(e.recent_errors[0].message, /Authentication failed/);
    });

    await eventually('the page matches /health/detailed', async () => {
      const d = await monitoringJson(tandem.url, '/health/detailed');
      assert.equal(await page.textContent('#status'), d.status);
      const shown = await page.locator('#components li').evaluateAll((lis) =>
        lis.map((li) => [li.dataset.component, li.lastElementChild.textContent]),
      );
      const expected = Object.entries(d.components)
        .map(([name, c]) => [name, c.status])
        .sort(([a], [b]) => a.localeCompare(b));
      assert.deepEqual(shown, expected);
    });

    // The page keeps updating on its own.
    const before = Number(await page.getAttribute('body', 'data-updates'));
    await eventually('another update', async () => {
      assert.ok(Number(await page.getAttribute('body', 'data-updates')) > before);
    });
    await page.screenshot({ path: artifactPath('monitoring.png'), fullPage: true });

    // A fresh tab without the token gets the login form; a wrong token is
    // refused; the right one shows the board.
    const context = await browser.newContext();
    const login = await context.newPage();
    await login.goto(`${tandem.url}/monitoring/`);
    await login.waitForSelector('#login:not([hidden])', { timeout: DEADLINE_MS });
    assert.equal(await login.isVisible('#board'), false);
    await login.fill('#token', 'not-the-token');
    await login.click('#login button');
    await login.waitForSelector('#login-error:not([hidden])', { timeout: DEADLINE_MS });
    await login.fill('#token', TOKEN);
    await login.click('#login button');
    await login.waitForSelector('#board:not([hidden])', { timeout: DEADLINE_MS });
    await eventually('the board after login', async () => {
      assert.equal(await text(login, 'websocket_connections'), '3');
    });
    await context.close();

    // The token was sent in a URL once (?token=): no log line carries it.
    const file = readFileSync(join(tandem.dir, 'tandem.log'), 'utf8');
    assert.ok(file.includes('WebSocket connected'), 'the log file has the traffic');
    assert.equal(file.includes(TOKEN), false, 'the token is in the log file');
    assert.equal(JSON.stringify(tandem.logs).includes(TOKEN), false, 'the token is on stdout');
    assert.equal(tandem.stderr.join('\n').includes(TOKEN), false, 'the token is on stderr');
  } finally {
    await browser.close();
    await tandem.stop();
  }
});
