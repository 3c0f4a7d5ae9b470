// `npm run bench`: runs every benchmark script in this folder in turn and prints its figures.
// Benchmarks measure; they never fail on timing. `npm run bench -- video` runs only matching scripts.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const scripts = readdirSync(here)
  .filter((name) => name.endsWith('.ts') && name !== 'run.ts' && !name.startsWith('_'))
  // The soak takes minutes: it runs only when asked for by name (`npm run bench -- soak`).
  .filter((name) =>
    filters.length === 0 ? name !== 'soak.ts' : filters.some((filter) => name.includes(filter)),
  )
  .sort();

let failed = 0;
for (const script of scripts) {
  console.log(`\n=== ${script} ===`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(here, script)], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed += 1;
    console.log(`(${script} exited with ${result.status ?? result.signal})`);
  }
}
// A broken benchmark is a bug; a slow one is a figure.
process.exit(failed > 0 ? 1 : 0);
