// Debian's Chromium, driven by playwright-core (which never downloads a
// browser of its own).

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps calling out to
// hosts a closed network refuses.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium with a fresh profile; close it when done. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/** Where screenshots and other test artifacts go: `target/test-artifacts/`. */
export function artifactPath(name) {
  const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'target', 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
