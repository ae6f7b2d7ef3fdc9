// The page a newcomer opens first: GET / on tandem itself, two tabs
// chatting through the browser client while links drop and transports
// switch.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { artifactPath, launchChromium } from './lib/chromium.mjs';
import { openPage } from './lib/client.mjs';
import { startTandem } from './lib/tandem.mjs';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function join(page, player) {
  await page.fill('#player', player);
  await page.fill('#room', 'room:demo');
  await page.click('#join-button');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

/** The chat lines of a tab: `[seq, from, text]`. */
function lines(page) {
  return page.$$eval('#log li', (lis) =>
    lis.filter((li) => li.children.length === 3).map((li) => [...li.children].map((c) => c.textContent)),
  );
}

async function sees(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#log li')].some((li) => li.textContent.endsWith(t)),
    text,
    { timeout: 15_000 },
  );
}

test('the demo page: two tabs chat while links drop and transports switch, nothing lost', async () => {
  const tandem = await startTandem();
  const alice = await openPage(browser, tandem.url);
  const bob = await openPage(browser, tandem.url);
  try {
    assert.equal(await alice.title(), 'Tandem demo');
    await join(alice, 'alice');
    await join(bob, 'bob');
    assert.equal(await alice.textContent('#transport'), 'websocket');

    await say(alice, 'hello from alice');
    await sees(bob, 'hello from alice');

    await alice.click('#drop-ws');
    await say(bob, 'while alice reconnects');
    await sees(alice, 'while alice reconnects');

    await alice.selectOption('#switch', 'dual');
    await alice.waitForFunction(() => document.getElementById('transport').textContent === 'websocket + sse');
    await say(bob, 'alice is on both');
    await sees(alice, 'alice is on both');

    await alice.selectOption('#switch', 'sse');
    await alice.waitForFunction(() => document.getElementById('transport').textContent === 'sse');
    await say(alice, 'alice over sse');
    await say(bob, 'bob answers');
    await sees(alice, 'bob answers');
    await sees(bob, 'alice over sse');

    assert.deepEqual(await lines(alice), [
      ['#1', 'alice', 'hello from alice'],
      ['#2', 'bob', 'while alice reconnects'],
      ['#3', 'bob', 'alice is on both'],
      ['#4', 'alice', 'alice over sse'],
      ['#5', 'bob', 'bob answers'],
    ]);
    assert.equal(await alice.textContent('#last-seq'), '5');
    assert.equal(await alice.textContent('#integrity'), '0 / 0');
    const timeline = await alice.$$eval('#timeline li', (lis) => lis.map((li) => li.lastChild.textContent));
    assert.ok(timeline.includes('connected over websocket + sse'), timeline.join('\n'));
    await alice.screenshot({ path: artifactPath('demo.png'), fullPage: true });
  } finally {
    await alice.close();
    await bob.close();
    await tandem.stop();
  }
});

test('the demo page runs under its Content-Security-Policy: no violation, and it cannot be framed', async () => {
  const tandem = await startTandem();
  const page = await browser.newPage();
  const violations = [];
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) violations.push(m.text());
  });
  try {
    const res = await page.goto(`${tandem.url}/`);
    assert.match(res.headers()['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(res.headers()['x-frame-options'], 'DENY');
    await join(page, 'carol');
    await say(page, 'under the policy');
    await sees(page, 'under the policy');
    // The chat input keeps its layout from the stylesheet (no inline style).
    assert.equal(await page.$eval('#text', (el) => getComputedStyle(el).flexGrow), '1');
    assert.deepEqual(violations, []);
  } finally {
    await page.close();
    await tandem.stop();
  }
});
