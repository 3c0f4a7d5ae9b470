// Writes the broker's acl_file from scripts/broker/config.ts.
//
//   npm run broker-config                       regenerate docs/mosquitto/acl.conf (example consoles)
//   npm run broker-config -- --out FILE console-<name> [console-<name> ...]
//                                               the ACL for a site, one user block per console
//
// Importing this module writes nothing.
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { exampleConsoles, mosquittoAcl } from './config.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The ACL shipped as an example, relative to the repository root. */
export const shippedAclPath = 'docs/mosquitto/acl.conf';

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: 'string' } },
    allowPositionals: true,
  });
  const consoles = positionals.length > 0 ? positionals : exampleConsoles;
  let text: string;
  try {
    text = mosquittoAcl(consoles);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const out = values.out ?? resolve(repoRoot, shippedAclPath);
  writeFileSync(out, text);
  console.log(`wrote ${out} (consoles: ${consoles.join(', ') || 'none'})`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
