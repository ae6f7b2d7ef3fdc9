// A game behind Tandem: the demo page's tic-tac-toe panel in two tabs,
// commands (`client.call`) reaching the Node game backend of
// examples/tictactoe/node-backend over the signed HTTP contract, its state
// published back into `room:<room>`; links cut mid-game lose no command and
// repeat none; a closed tab becomes one `player_left` once its resume window
// has passed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { artifactPath, launchChromium } from './lib/chromium.mjs';
import { openPage } from './lib/client.mjs';
import { startProxy } from './lib/proxy.mjs';
import { API_KEY, startTandem } from './lib/tandem.mjs';
import { startGameBackend } from './lib/tictactoe.mjs';

const SECRET = 'tictactoe-browser-test-secret-0123456789';
const RESUME_WINDOW_SECONDS = 3;
const ROOM = 'match-1';
const WAIT_MS = 15_000;

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** The board as a page shows it: nine characters, `.` for an empty cell. */
function board(page) {
  return page.$$eval('#ttt-board button', (cells) => cells.map((c) => c.textContent || '.').join(''));
}

async function seesBoard(page, expected) {
  try {
    await page.waitForFunction(
      (b) => [...document.querySelectorAll('#ttt-board button')].map((c) => c.textContent || '.').join('') === b,
      expected,
      { timeout: WAIT_MS, polling: 20 },
    );
  } catch (e) {
    throw new Error(`board ${await board(page)}, expected ${expected}: ${e.message}`);
  }
}

async function seesText(page, id, expected) {
  try {
    await page.waitForFunction(([id, t]) => document.getElementById(id).textContent === t, [id, expected], {
      timeout: WAIT_MS,
      polling: 20,
    });
  } catch (e) {
    throw new Error(`#${id} is ${JSON.stringify(await page.textContent(`#${id}`))}, expected ${JSON.stringify(expected)}: ${e.message}`);
  }
}

/** The outcome lines of the page's calls, oldest first (`move 4 → ok`, `move 0 → not_your_turn`). */
function calls(page) {
  return page.$$eval('#ttt-log li', (lis) => lis.map((li) => li.textContent));
}

/** Waits until the page's call log holds `n` lines. */
async function callsDone(page, n) {
  try {
    await page.waitForFunction((n) => document.querySelectorAll('#ttt-log li').length >= n && window.ttt.pending === 0, n, {
      timeout: WAIT_MS,
      polling: 20,
    });
  } catch (e) {
    throw new Error(`calls ${JSON.stringify(await calls(page))}, expected ${n}: ${e.message}`);
  }
}

function cell(page, i) {
  return page.click(`[data-testid="ttt-cell-${i}"]`);
}

/** Opens the demo page through `origin`, connects as `player`, joins the game room. */
async function player(origin, name, seat) {
  const page = await openPage(browser, origin);
  await page.fill('#player', name);
  await page.fill('#room', 'room:chat');
  await page.click('#join-button');
  await seesText(page, 'status', 'connected');
  await page.fill('#ttt-room', ROOM);
  await page.click('[data-testid="ttt-join"]');
  await seesText(page, 'ttt-seat', `${ROOM}: you are ${seat}`);
  return page;
}

/**
 * Cuts the page's link and refuses new ones until its client knows (status
 * `reconnecting`), runs `meanwhile`, then lets it reconnect at once (as a
 * browser's `online` event would).
 */
async function cutUntilNoticed(page, link, meanwhile = async () => {}) {
  link.refuse(true);
  link.cut();
  await page.waitForFunction(() => window.tandem.status().state === 'reconnecting', null, { timeout: WAIT_MS });
  await meanwhile();
  link.refuse(false);
  await page.evaluate(() => window.tandem.reconnect());
}

/** Polls the backend's lifecycle events until `pred` holds for them (deadline `WAIT_MS`). */
async function eventsUntil(backend, pred, what) {
  const deadline = Date.now() + WAIT_MS + RESUME_WINDOW_SECONDS * 1000;
  for (;;) {
    const events = await backend.events();
    if (pred(events)) return events;
    if (Date.now() > deadline) throw new Error(`no ${what} in the backend's events: ${JSON.stringify(events)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('tic-tac-toe: two tabs play through the game backend; cuts lose no command; a closed tab is one player_left', async () => {
  // The backend publishes through Tandem, Tandem calls the backend: the
  // backend gets a proxy's address first, the proxy Tandem's once it listens.
  const publishProxy = await startProxy('http://127.0.0.1:9');
  const backend = await startGameBackend({ tandemUrl: publishProxy.url, apiKey: API_KEY, secret: SECRET });
  const tandem = await startTandem(
    {},
    {
      env: {
        TANDEM_BACKEND__COMMAND_URL: backend.commandUrl,
        TANDEM_BACKEND__EVENTS_URL: backend.eventsUrl,
        TANDEM_BACKEND__SECRET: SECRET,
        TANDEM_SESSION__RESUME_WINDOW_SECONDS: String(RESUME_WINDOW_SECONDS),
      },
    },
  );
  publishProxy.retarget(tandem.url);
  // Each tab reaches Tandem through its own proxy, to cut its links alone.
  const aliceLink = await startProxy(tandem.url);
  const bobLink = await startProxy(tandem.url);
  let alice;
  let bob;
  try {
    alice = await player(aliceLink.url, 'alice', 'X');
    bob = await player(bobLink.url, 'bob', 'O');
    const aliceSession = await alice.evaluate(() => window.tandem.sessionId);
    const bobSession = await bob.evaluate(() => window.tandem.sessionId);
    assert.ok(aliceSession && bobSession && aliceSession !== bobSession);
    for (const page of [alice, bob]) {
      await seesBoard(page, '.........');
      await seesText(page, 'ttt-turn', 'X to move');
    }

    // X in the centre: both tabs get the published state.
    await cell(alice, 4);
    for (const page of [alice, bob]) {
      await seesBoard(page, '....X....');
      await seesText(page, 'ttt-turn', 'O to move');
    }
    // The backend referees: its 4xx codes reach the page as the call's rejection.
    await cell(alice, 0);
    await seesText(alice, 'ttt-error', 'not_your_turn');
    await cell(bob, 4);
    await seesText(bob, 'ttt-error', 'cell_taken');
    await cell(bob, 0);
    await seesText(bob, 'ttt-error', '');
    await cell(alice, 2);
    for (const page of [alice, bob]) await seesBoard(page, 'O.X.X....');

    // Bob's link goes silent right after his move left: the backend runs it
    // (alice sees it) but the reply cannot reach him. Then the link is cut
    // (and stays down until his client noticed); his client resumes the
    // session and asks again with the same command id: Tandem answers from
    // its reply cache, nothing runs twice.
    bobLink.freeze();
    await cell(bob, 6);
    await seesBoard(alice, 'O.X.X.O..');
    assert.equal(await bob.evaluate(() => window.ttt.pending), 1, 'the reply has not reached bob');
    await cutUntilNoticed(bob, bobLink);
    await callsDone(bob, 4);
    await seesBoard(bob, 'O.X.X.O..');
    await seesText(bob, 'ttt-turn', 'X to move');
    assert.equal(await bob.evaluate(() => window.tandem.sessionId), bobSession, 'bob resumed his session');

    // Alice loses her link and cannot reconnect for a moment; the move she
    // makes meanwhile waits for the link and goes once it is back.
    await cutUntilNoticed(alice, aliceLink, async () => {
      await cell(alice, 8);
      assert.equal(await alice.evaluate(() => window.ttt.pending), 1);
    });
    await callsDone(alice, 5);
    for (const page of [alice, bob]) await seesBoard(page, 'O.X.X.O.X');
    assert.equal(await alice.evaluate(() => window.tandem.sessionId), aliceSession, 'alice resumed her session');

    // The game goes on to its end: O takes the left column.
    await cell(bob, 3);
    for (const page of [alice, bob]) {
      await seesBoard(page, 'O.XOX.O.X');
      await seesText(page, 'ttt-turn', 'O wins');
    }
    await cell(alice, 5);
    await seesText(alice, 'ttt-error', 'game_over');

    // Every command answered once, in the order it was made.
    await callsDone(alice, 6);
    await callsDone(bob, 5);
    assert.deepEqual(await calls(alice), [
      'join → ok',
      'move 4 → ok',
      'move 0 → not_your_turn',
      'move 2 → ok',
      'move 8 → ok',
      'move 5 → game_over',
    ]);
    assert.deepEqual(await calls(bob), [
      'join → ok',
      'move 4 → cell_taken',
      'move 0 → ok',
      'move 6 → ok',
      'move 3 → ok',
    ]);
    await alice.screenshot({ path: artifactPath('tictactoe.png'), fullPage: true });

    // Both cuts were resumes, not departures.
    let events = await eventsUntil(
      backend,
      (evs) => [aliceSession, bobSession].every((s) => evs.some((e) => e.type === 'session_resumed' && e.session_id === s)),
      'session_resumed for both sessions',
    );
    assert.deepEqual(events.filter((e) => e.type === 'player_left'), [], 'a cut is not a player_left');

    // Bob closes his tab: once the resume window has passed, his session
    // ends, the backend hears it once and frees his seat.
    await bob.close();
    bob = null;
    events = await eventsUntil(
      backend,
      (evs) => evs.some((e) => e.type === 'player_left' && e.session_id === bobSession),
      `player_left for ${bobSession}`,
    );
    await alice.waitForFunction(() => window.ttt.state?.players?.O === null, null, { timeout: WAIT_MS });
    await seesText(alice, 'ttt-seat', `${ROOM}: you are X`);
    events = await backend.events();
    const left = events.filter((e) => e.type === 'player_left');
    assert.equal(left.length, 1, JSON.stringify(left));
    assert.equal(left[0].session_id, bobSession);
    assert.equal(left[0].player_id, 'bob');
    assert.equal(left[0].reason, 'expired');
    assert.ok(!events.some((e) => e.type === 'player_left' && (e.session_id === aliceSession || e.player_id === 'alice')));
    for (const [who, session] of [['alice', aliceSession], ['bob', bobSession]]) {
      const started = events.filter((e) => e.type === 'session_started' && e.session_id === session);
      assert.equal(started.length, 1, `${who}: one session_started`);
      assert.equal(started[0].player_id, who);
    }
    assert.equal(await alice.evaluate(() => window.tandem.status().state), 'connected');
  } finally {
    await alice?.close();
    await bob?.close();
    await aliceLink.close();
    await bobLink.close();
    await publishProxy.close();
    await tandem.stop();
    await backend.stop();
  }
});
