// Generates docs/schemas/<Name>.schema.json from the zod schemas exported by device/protocol, so the
// integrators' JSON Schemas can never drift from what the device checks.
//
//   npx tsx scripts/gen-schemas.ts          write the files (and remove stale *.schema.json)
//   npx tsx scripts/gen-schemas.ts --check  exit 1 if the files on disk differ (for CI)
//
// Importing this module writes nothing: tests call generateSchemas() and checkSchemas() in-process.
//
// Which side of a schema is described: a zod schema with defaults has two shapes. Documents the device
// receives (tokens, schedule, view requests) are described as the sender may write them (io 'input':
// a field with a default, such as a window's viewMode, is optional). Documents the device sends are
// described as they arrive (io 'output'). Every exported schema must be classified below, so a new
// schema forces that decision instead of silently getting one.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import * as protocol from '../device/protocol/index.js';

type Io = 'input' | 'output';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Folder of the generated files, relative to the repository root. */
export const schemaDir = 'docs/schemas';

/** How each exported schema is described; see the header. */
const ioOf: Record<string, Io> = {
  DeviceId: 'input',
  ViewMode: 'input',
  GrantClaims: 'input',
  DtlsFingerprint: 'input',
  Sha256Base64url: 'input',
  HangupSecret: 'input',
  RecurringWindow: 'input',
  OneOffWindow: 'input',
  ScheduleClaims: 'input',
  ScheduleMessage: 'input',
  ViewRequest: 'input',
  ViewHangup: 'input',
  AckMessage: 'input',
  ViewInbound: 'input',
  IceCandidate: 'input',
  SignalAnswer: 'input',
  SignalCandidate: 'input',
  SemVer: 'input',
  PackageArch: 'input',
  Sha256Hex: 'input',
  UpdateArtifact: 'input',
  UpdateClaims: 'input',
  UpdateMessage: 'input',
  SignalOffer: 'output',
  ViewDecision: 'output',
  ViewEnded: 'output',
  DeviceEvent: 'output',
  StatusMessage: 'output',
  HealthFault: 'output',
  HealthMessage: 'output',
  InfoMessage: 'output',
  AuditRecord: 'output',
  RefusalReason: 'output',
  EndReason: 'output',
  EndedBy: 'output',
  ScheduleRejection: 'output',
  SignalRefusal: 'output',
  UpdateEvent: 'output',
  UpdateFailure: 'output',
  DecommissionedEvent: 'output',
};

/**
 * Rules the device checks with zod refinements, which JSON Schema cannot express (zod drops them).
 * A schema with a refinement and no entry here fails the generator: the rule must be written down.
 */
const extraRules: Record<string, string[]> = {
  GrantClaims: ['exp must be greater than nbf.'],
  ScheduleClaims: ['exp must be greater than nbf.'],
  UpdateArtifact: ['url must start with https://.'],
  UpdateClaims: ['Every package url must start with https://.', 'packages names at least one architecture.'],
};

/** Every zod schema exported by device/protocol, by export name, in name order. */
export function protocolSchemas(): Map<string, z.ZodType> {
  const found = new Map<string, z.ZodType>();
  for (const name of Object.keys(protocol).sort()) {
    const value = (protocol as Record<string, unknown>)[name];
    if (value instanceof z.ZodType) found.set(name, value);
  }
  return found;
}

/** True if the schema or anything inside it carries a refinement (a zod `custom` check). */
function hasRefinement(schema: unknown, seen = new Set<unknown>()): boolean {
  if (schema === null || typeof schema !== 'object' || seen.has(schema)) return false;
  seen.add(schema);
  const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (!def) return false;
  const checks = (def.checks ?? []) as Array<{ _zod?: { def?: { check?: string } } }>;
  if (checks.some((check) => check._zod?.def?.check === 'custom')) return true;
  const children: unknown[] = [def.innerType, def.element, def.in, def.out, def.left, def.right];
  if (def.shape && typeof def.shape === 'object') children.push(...Object.values(def.shape));
  if (Array.isArray(def.options)) children.push(...def.options);
  if (Array.isArray(def.items)) children.push(...def.items);
  return children.some((child) => hasRefinement(child, seen));
}

/** Keyword order: identity first, then alphabetical. Property-name maps keep declaration order. */
const leadingKeys = ['$schema', '$id', 'title', 'description', '$comment', 'type'];
const nameMaps = new Set(['properties', '$defs', 'definitions', 'patternProperties', 'dependentSchemas']);

function keyRank(key: string): [number, string] {
  const index = leadingKeys.indexOf(key);
  return [index === -1 ? leadingKeys.length : index, key];
}

function stable(value: unknown, keepOrder = false): unknown {
  if (Array.isArray(value)) return value.map((item) => stable(item));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (!keepOrder) {
    entries.sort(([a], [b]) => {
      const [rankA, nameA] = keyRank(a);
      const [rankB, nameB] = keyRank(b);
      return rankA - rankB || (nameA < nameB ? -1 : nameA > nameB ? 1 : 0);
    });
  }
  return Object.fromEntries(
    entries.map(([key, child]) => [key, stable(child, !keepOrder && nameMaps.has(key))]),
  );
}

function describe(name: string, schema: z.ZodType): Record<string, unknown> {
  const io = ioOf[name];
  if (!io) throw new Error(`${name}: classify it in ioOf (scripts/gen-schemas.ts) as 'input' or 'output'`);
  const rules = extraRules[name] ?? [];
  if (hasRefinement(schema) && rules.length === 0) {
    throw new Error(`${name} has a refinement that JSON Schema cannot express: describe it in extraRules`);
  }
  const generated = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'throw' });
  const side =
    io === 'input'
      ? 'Shape as the sender writes it: fields with a default may be omitted.'
      : 'Shape as the device sends it.';
  const comment = [
    'Generated from device/protocol by scripts/gen-schemas.ts; do not edit.',
    side,
    ...(rules.length > 0 ? [`Also checked by the device: ${rules.join(' ')}`] : []),
  ].join(' ');
  return { ...generated, title: name, $comment: comment };
}

/** Repository-relative path → file content, for every exported protocol schema. Writes nothing. */
export function generateSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [name, schema] of protocolSchemas()) {
    files.set(
      `${schemaDir}/${name}.schema.json`,
      `${JSON.stringify(stable(describe(name, schema)), null, 2)}\n`,
    );
  }
  return files;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function schemaFilesOnDisk(root: string): string[] {
  try {
    return readdirSync(join(root, schemaDir))
      .filter((file) => file.endsWith('.schema.json'))
      .map((file) => `${schemaDir}/${file}`);
  } catch {
    return [];
  }
}

/** What differs between the files on disk and what would be generated; empty when up to date. */
export function checkSchemas(root = repoRoot): string[] {
  const wanted = generateSchemas();
  const problems: string[] = [];
  for (const [path, content] of wanted) {
    const current = readOrUndefined(join(root, path));
    if (current === undefined) problems.push(`${path} is missing`);
    else if (current !== content) problems.push(`${path} is out of date`);
  }
  for (const path of schemaFilesOnDisk(root)) {
    if (!wanted.has(path)) problems.push(`${path} is not generated from any schema (stale)`);
  }
  return problems;
}

/** Writes every generated file and removes stale ones; returns the paths written or removed. */
export function writeSchemas(root = repoRoot): string[] {
  const wanted = generateSchemas();
  const changed: string[] = [];
  mkdirSync(join(root, schemaDir), { recursive: true });
  for (const [path, content] of wanted) {
    if (readOrUndefined(join(root, path)) === content) continue;
    writeFileSync(join(root, path), content);
    changed.push(path);
  }
  for (const path of schemaFilesOnDisk(root)) {
    if (wanted.has(path)) continue;
    rmSync(join(root, path));
    changed.push(path);
  }
  return changed;
}

function main(args: readonly string[]): number {
  if (args.includes('--check')) {
    const problems = checkSchemas();
    for (const problem of problems) console.error(problem);
    if (problems.length > 0) console.error('run: npx tsx scripts/gen-schemas.ts');
    return problems.length > 0 ? 1 : 0;
  }
  const changed = writeSchemas();
  console.log(changed.length > 0 ? changed.join('\n') : 'schemas up to date');
  return 0;
}

const invokedPath = process.argv[1];
if (invokedPath && resolve(invokedPath) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
