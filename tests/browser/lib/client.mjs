// Runs the browser client in a page tandem serves (the demo page, which
// loads /client/tandem.js) and records what the application sees.

/** Opens `origin`'s demo page in a new page of `browser`. */
export async function openPage(browser, origin) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  const res = await page.goto(`${origin}/`);
  if (res.status() !== 200) throw new Error(`GET / answered ${res.status()}`);
  return page;
}

/**
 * Creates `window.c`, a TandemClient with `options`, in the page. Records
 * `window.seqs` (every seq the application got), `window.data` (their data), `window.statuses`,
 * `window.events` (resyncs and messages in order) and `window.tokens`
 * (token callback calls; the first `tokenFailures` throw). `pinRandom` pins the jitter to its ceiling;
 * `holdResync` makes the resync hook wait for `window.releaseResync()`.
 */
export async function startClient(
  page,
  options,
  { pinRandom = false, holdResync = false, token = null, tokenFailures = 0 } = {},
) {
  await page.evaluate(
    async ({ options, pinRandom, holdResync, token, tokenFailures }) => {
      const { TandemClient } = await import('/client/tandem.js');
      window.seqs = [];
      window.data = [];
      window.statuses = [];
      window.events = [];
      window.tokens = 0;
      const opts = { ...options };
      if (pinRandom) opts.random = () => 1;
      if (token !== null) {
        opts.token = async () => {
          window.tokens += 1;
          if (window.tokens <= tokenFailures) throw new Error('token service unavailable');
          return token;
        };
      }
      const c = new TandemClient(opts);
      window.c = c;
      window.statuses.push(c.status());
      c.onStatus((s) => window.statuses.push(s));
      c.onMessage((m) => {
        window.seqs.push(m.seq);
        window.data.push(m.data);
        window.events.push(`message ${m.seq}`);
      });
      c.onResync(async (info) => {
        window.events.push(`resync ${info.reason}`);
        window.resyncInfo = info;
        if (holdResync) await new Promise((r) => (window.releaseResync = r));
        window.events.push('resync done');
      });
    },
    { options, pinRandom, holdResync, token, tokenFailures },
  );
}

/** Polls `fn` in the page until it returns a truthy value (deadline `timeout` ms). */
export async function until(page, fn, arg, timeout = 15_000) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 20 });
  return handle.jsonValue();
}

export function connectedOver(page, transports, timeout) {
  return until(
    page,
    (t) => {
      const s = window.c.status();
      return s.state === 'connected' && s.transports.join('+') === t;
    },
    transports.join('+'),
    timeout,
  );
}

/** `[1, 2, …, n]`. */
export function range(n, from = 1) {
  return Array.from({ length: n }, (_, i) => from + i);
}

/**
 * Publishes `count` messages to `channel` through the backend API, in
 * order, `paceMs` apart (so that cuts land mid-stream).
 */
export async function publishMany(tandem, channel, count, { start = 0, paceMs = 0 } = {}) {
  for (let i = 0; i < count; i++) {
    if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
    const { status, body } = await tandem.api('/api/publish', { channel, event: 'n', data: { i: start + i } });
    if (status !== 200) throw new Error(`publish answered ${status}: ${JSON.stringify(body)}`);
  }
}
