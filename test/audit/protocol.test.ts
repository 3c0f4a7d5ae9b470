// The AuditRecord schema: docs/protocol.md shows every kind, and the schema keeps secrets out.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AuditRecord } from '../../device/protocol/index.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

function auditExamples(): unknown[] {
  const pattern = /<!--\s*example:\s*AuditRecord\s*-->\s*\n```json\n([\s\S]*?)\n```/g;
  return [...doc.matchAll(pattern)].map((match) => JSON.parse(match[1] ?? 'null'));
}

const base = {
  schemaVersion: 2,
  id: '3f6c2a1e-8b4d-4c7a-9e21-5d0f7b6a9c13',
  at: '2026-03-10T22:15:02.118Z',
  deviceId: 'kam-0042',
};

describe('AuditRecord', () => {
  it('is shown in docs/protocol.md for every kind, and each example parses', () => {
    const examples = auditExamples();
    for (const example of examples) expect(AuditRecord.safeParse(example).success).toBe(true);
    const kinds = new Set(examples.map((example) => (example as { kind: string }).kind));
    const all = AuditRecord.options.map((option) => option.shape.kind.value);
    expect([...kinds].sort()).toEqual([...all].sort());
  });

  it('refuses a field the schema does not list, such as a grant', () => {
    const record = { ...base, kind: 'request', requestId: 'r1', decision: 'granted', grant: 'eyJ.x.y' };
    expect(AuditRecord.safeParse(record).success).toBe(false);
  });

  it('refuses a record whose id is not a UUID', () => {
    const record = { ...base, id: 'abc', kind: 'request', requestId: 'r1', decision: 'refused' };
    expect(AuditRecord.safeParse(record).success).toBe(false);
  });

  it('refuses a session end with an unknown end reason', () => {
    const record = {
      ...base,
      kind: 'session-end',
      requestId: 'r1',
      sessionId: 's1',
      operatorId: 'op',
      startedAt: base.at,
      durationMs: 1,
      endReason: 'bored',
    };
    expect(AuditRecord.safeParse(record).success).toBe(false);
  });
});
