// The device package leaves out the fleet service's dependencies (package.json's
// fleetOnlyDependencies, dropped by scripts/package/build.sh). These tests read the sources, not the
// build script: nothing the device or the technician's tool loads may be on that list, everything
// they load must be a production dependency, and each listed one must really be the fleet's.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  fleetOnlyDependencies: string[];
};

function sources(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(repoRoot, dir, file));
}

/** Packages a source file loads at run time: static and dynamic imports, require(), createRequire. */
function packagesLoaded(files: string[]): Set<string> {
  const found = new Set<string>();
  const patterns = [
    /^\s*import\s+(?!type\b)[^;]*?from\s+'([^'.][^']*)'/gm,
    /^\s*export\s+(?!type\b)[^;]*?from\s+'([^'.][^']*)'/gm,
    /(?<!typeof\s)import\(\s*'([^'.][^']*)'\s*\)/g,
    /require\)?\(\s*'([^'.][^']*)'\s*\)/g,
    /\(import\.meta\.url\)\(\s*'([^'.][^']*)'\s*\)/g,
    /transport:\s*\{\s*target:\s*'([^'.][^']*)'/g,
  ];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of patterns) {
      for (const match of text.matchAll(pattern)) {
        const specifier = match[1] ?? '';
        if (specifier.startsWith('node:')) continue;
        const parts = specifier.split('/');
        found.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier));
      }
    }
  }
  return found;
}

const device = packagesLoaded([...sources('device'), ...sources('provisioning')]);
const fleet = packagesLoaded(sources('fleet'));

describe("the device package's dependencies", () => {
  it('finds the packages the device loads (the scan works)', () => {
    for (const name of ['mqtt', 'zod', 'jose', 'werift', 'koffi', 'onoff', 'node-webcam', 'pino-pretty']) {
      expect(device, name).toContain(name);
    }
  });

  it('loads no fleet-only dependency from the device service or the technician tool', () => {
    expect(pkg.fleetOnlyDependencies.filter((name) => device.has(name))).toEqual([]);
  });

  it('has every package the device loads among the production dependencies', () => {
    expect([...device].filter((name) => !(name in pkg.dependencies)).sort()).toEqual([]);
  });

  it('lists only production dependencies that the fleet service loads', () => {
    for (const name of pkg.fleetOnlyDependencies) {
      expect(pkg.dependencies, name).toHaveProperty(name);
      expect(fleet, name).toContain(name);
    }
  });
});
