// The harness itself: a real tandem, a real Chromium, one page load.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { launchChromium } from './lib/chromium.mjs';
import { startTandem } from './lib/tandem.mjs';

test('Chromium reaches a real tandem over loopback', async () => {
  const tandem = await startTandem();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const res = await page.goto(`${tandem.url}/health/live`);
    assert.equal(res.status(), 200);
    const body = JSON.parse(await page.textContent('body'));
    assert.equal(body.status, 'alive');
  } finally {
    await browser.close();
    await tandem.stop();
  }
});
