// The demo page's player field (demo/index.html) must check exactly what the
// server accepts as a player id, or validation silently does nothing
// (Chromium compiles `pattern` with the `v` flag and ignores a pattern that
// fails to compile) or lets through ids the server then refuses.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const html = readFileSync(new URL('../demo/index.html', import.meta.url), 'utf8');

/** The attributes of the `<input id="player">` tag, entity-decoded. */
function playerInputAttributes() {
  const tag = html.match(/<input\b[^>]*\bid="player"[^>]*>/);
  assert.ok(tag, 'demo/index.html has <input id="player">');
  const attrs = {};
  for (const [, name, value] of tag[0].matchAll(/([a-z-]+)(?:="([^"]*)")?/g)) {
    attrs[name] = (value ?? '')
      .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
      .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
      .replaceAll('&quot;', '"')
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&amp;', '&');
  }
  return attrs;
}

/** How a browser applies `pattern` (HTML spec: `^(?:…)$`, the `v` flag). */
function compilePattern(pattern) {
  return new RegExp(`^(?:${pattern})$`, 'v');
}

// The server's rule, `is_valid_player_id` in server/src/auth: 1 to 64 bytes,
// each an ASCII letter or digit or one of `_ . @ -`.
const MAX_PLAYER_ID_LEN = 64;
function serverAccepts(id) {
  const bytes = Buffer.from(id, 'utf8');
  return (
    bytes.length >= 1 &&
    bytes.length <= MAX_PLAYER_ID_LEN &&
    [...bytes].every((b) => /^[A-Za-z0-9]$/.test(String.fromCharCode(b)) || '_.@-'.includes(String.fromCharCode(b)))
  );
}

/** Ids on and around every edge of the rule, plus a seeded random sample. */
function candidates() {
  const ids = [
    // The server's own unit test cases.
    'alice',
    'A.b_c-d@e',
    'x'.repeat(64),
    'x'.repeat(65),
    '',
    'a:b',
    'ünï',
    // Lengths, and characters that are more than one byte or code unit.
    'x'.repeat(63),
    'é'.repeat(32),
    'é'.repeat(64),
    '😀',
    'a😀',
    '\u00a0',
    'ａ',
    '\u212a', // KELVIN SIGN, which case-folds to k
    // Anchoring: the whole value must match.
    'alice\n',
    '\nalice',
    ' alice',
    'alice ',
    'player:alice',
    'room:lobby',
    '-',
    '--',
    '..',
    '@@',
    '__',
  ];
  // Every ASCII character, alone and between valid ones.
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    ids.push(ch, `a${ch}b`, `${ch}`.repeat(64), `${ch}`.repeat(65));
  }
  // A deterministic sample of mostly-valid strings of every length up to 70.
  const alphabet = 'aZ09_.@-:/ \\[]{}()|&!#$%*+,;<=>?^`~é😀';
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  for (let i = 0; i < 5000; i++) {
    const len = next() % 71;
    let id = '';
    for (let k = 0; k < len; k++) {
      // Nine in ten characters valid, so long valid ids occur too.
      id += next() % 10 ? 'aZ09_.@-'[next() % 8] : [...alphabet][next() % [...alphabet].length];
    }
    ids.push(id);
  }
  return ids;
}

test('the player pattern compiles as a browser compiles it (the v flag)', () => {
  const { pattern } = playerInputAttributes();
  assert.ok(pattern, 'the player input has a pattern');
  assert.doesNotThrow(() => compilePattern(pattern));
});

test('the player pattern accepts exactly the ids the server accepts', () => {
  const re = compilePattern(playerInputAttributes().pattern);
  const wrong = candidates().filter((id) => re.test(id) !== serverAccepts(id));
  assert.deepEqual(wrong.map((id) => JSON.stringify(id)), []);
  assert.ok(re.test('alice') && !re.test('a:b') && !re.test('x'.repeat(65)), 'sanity');
});

test('the player field is required and no longer than the server allows', () => {
  const attrs = playerInputAttributes();
  assert.ok('required' in attrs, 'required');
  assert.equal(Number(attrs.maxlength), MAX_PLAYER_ID_LEN);
});
