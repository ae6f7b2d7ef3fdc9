// Builds the browser client: a type check, one minified ESM bundle
// (dist/tandem.js, which tandem serves at /client/tandem.js) and the type
// declarations (dist/types/). Fails when the bundle is over its size budget.
//
//   node build.mjs           # type-check and write dist/
//   node build.mjs --check   # fail unless the committed dist/ equals a fresh build
//   node build.mjs --lib     # transpile src/ to .build/ for the unit tests

import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const BUDGET_GZIP_BYTES = 8 * 1024;
const mode = process.argv[2] ?? '--write';

if (mode === '--lib') {
  const out = join(here, '.build');
  rmSync(out, { recursive: true, force: true });
  const entryPoints = readdirSync(join(here, 'src')).filter((f) => f.endsWith('.ts')).map((f) => join(here, 'src', f));
  await esbuild.build({ entryPoints, outdir: out, format: 'esm', target: 'es2020', platform: 'neutral', logLevel: 'error' });
  process.exit(0);
}

const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const typesDir = mkdtempSync(join(tmpdir(), 'tandem-js-types-'));
try {
  // Type check and declarations in one run.
  execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json'), '--outDir', typesDir], { stdio: 'inherit' });
  const result = await esbuild.build({
    entryPoints: [join(here, 'src', 'index.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    write: false,
    logLevel: 'error',
  });
  const bundle = Buffer.from(result.outputFiles[0].contents);
  const gzipped = gzipSync(bundle, { level: 9 }).length;
  console.log(`tandem.js: ${bundle.length} bytes minified, ${gzipped} bytes minified+gzipped (budget ${BUDGET_GZIP_BYTES})`);
  if (gzipped > BUDGET_GZIP_BYTES) {
    console.error(`tandem.js is over its size budget by ${gzipped - BUDGET_GZIP_BYTES} bytes`);
    process.exit(1);
  }
  const fresh = new Map([['tandem.js', bundle]]);
  for (const f of readdirSync(typesDir)) fresh.set(join('types', f), readFileSync(join(typesDir, f)));

  const dist = join(here, 'dist');
  if (mode === '--check') {
    const stale = [];
    for (const [name, bytes] of fresh) {
      let committed;
      try {
        committed = readFileSync(join(dist, name));
      } catch {
        committed = null;
      }
      if (!committed || !committed.equals(bytes)) stale.push(name);
    }
    const committedTypes = readdirSync(join(dist, 'types'));
    for (const f of committedTypes) if (!fresh.has(join('types', f))) stale.push(join('types', f));
    if (stale.length) {
      console.error(`client-sdk/js/dist is stale (${stale.join(', ')}): run \`npm run build\` in client-sdk/js and commit dist/`);
      process.exit(1);
    }
    console.log('dist/ equals a fresh build');
  } else {
    rmSync(dist, { recursive: true, force: true });
    mkdirSync(join(dist, 'types'), { recursive: true });
    for (const [name, bytes] of fresh) writeFileSync(join(dist, name), bytes);
  }
} finally {
  rmSync(typesDir, { recursive: true, force: true });
}
