// The resident's view of the device's own audit log: who looked when, for how long, which requests
// were refused and why, and agreed check-ins that did not take place. Plain words, local time.
// The records come from device/audit's reader over <stateDir>/audit/audit-YYYY-MM-DD.jsonl.
import { readAuditRecords } from '../device/audit/index.js';
import type { AuditRecord } from '../device/protocol/index.js';
import { refusalText, signalRefusalText } from '../device/protocol/reasons.js';

export interface AuditQuery {
  dir: string;
  from?: Date | undefined;
  to?: Date | undefined;
}

export async function collectAudit(query: AuditQuery): Promise<{ records: AuditRecord[]; skipped: number }> {
  const reader = readAuditRecords(query.dir, {
    ...(query.from ? { from: query.from } : {}),
    ...(query.to ? { to: query.to } : {}),
  });
  const records: AuditRecord[] = [];
  for await (const record of reader) records.push(record);
  records.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return { records, skipped: reader.skipped };
}

const endText: Record<string, string> = {
  'operator-hangup': 'the operator ended it',
  'max-duration': 'the time limit was reached',
  'window-end': 'the agreed time ended',
  'grant-expired': 'the permission ran out',
  'privacy-on': 'privacy mode was turned on',
  'led-fault': 'the lamp failed, so the view stopped',
  'clock-unsynced': 'the clock could not be trusted',
  'schedule-changed': 'the agreed times changed',
  'camera-failure': 'the camera failed',
};

function duration(ms: number): string {
  const totalS = Math.round(ms / 1000);
  return totalS < 60 ? `${totalS} s` : `${Math.floor(totalS / 60)} min ${totalS % 60} s`;
}

export interface AuditRow {
  when: string;
  what: string;
  who: string;
  howLong: string;
  note: string;
}

export function auditRows(records: AuditRecord[], timeZone: string): AuditRow[] {
  const format = new Intl.DateTimeFormat('sv-SE', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const local = (iso: string) => format.format(new Date(iso));
  // A granted request is shown by its session's end (with the duration); only an unended one stays.
  const ended = new Set(
    records.flatMap((record) => (record.kind === 'session-end' ? [record.sessionId] : [])),
  );
  const shown = records.filter(
    (record) =>
      !(record.kind === 'request' && record.decision === 'granted' && ended.has(record.sessionId ?? '')),
  );
  return shown.map((record) => rowFor(record, local));
}

function rowFor(record: AuditRecord, local: (iso: string) => string): AuditRow {
  switch (record.kind) {
    case 'request':
      return record.decision === 'granted'
        ? {
            when: local(record.at),
            what: 'Look-in allowed',
            who: record.operatorId ?? '',
            howLong: '',
            note: '',
          }
        : {
            when: local(record.at),
            what: 'Look-in refused',
            who: record.operatorId ?? '',
            howLong: '',
            note: record.reason ? refusalText[record.reason] : '',
          };
    case 'session-end':
      return {
        when: local(record.startedAt),
        what: 'Looked in',
        who: record.operatorId,
        howLong: duration(record.durationMs),
        note: endText[record.endReason] ?? record.endReason,
      };
    case 'signal-refused':
      return {
        when: local(record.at),
        what: record.signal === 'hangup' ? 'Hang-up refused' : 'Connection refused',
        who: '',
        howLong: '',
        note: `someone other than ${record.operatorId} tried to ${record.signal === 'hangup' ? 'end' : 'take over'} the look-in: ${signalRefusalText[record.reason]}`,
      };
    case 'window-missed':
      return {
        when: local(record.windowStart),
        what: 'No look-in',
        who: '',
        howLong: '',
        note: `nobody looked in the agreed time ${local(record.windowStart)} – ${local(record.windowEnd).slice(11)}`,
      };
    case 'refusals':
      return {
        when: local(record.from),
        what: `Look-in refused ${record.count} more times`,
        who: '',
        howLong: '',
        note: `${refusalText[record.reason]} (until ${local(record.to)})`,
      };
  }
}

export function formatAuditTable(rows: AuditRow[]): string {
  const header: AuditRow = { when: 'When', what: 'What', who: 'Who', howLong: 'How long', note: 'Note' };
  const all = [header, ...rows];
  const keys = ['when', 'what', 'who', 'howLong', 'note'] as const;
  const widths = keys.map((key) => Math.max(...all.map((row) => row[key].length)));
  const line = (row: AuditRow) =>
    keys
      .map((key, i) => row[key].padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
