// Audit records made from a real supervisor's events: one per request, one per session end.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AuditTrail, attachAudit } from '../../device/audit/index.js';
import type { AuditRecord } from '../../device/protocol/index.js';
import { deviceId, type Harness, scheduledHarness, settle } from '../../scripts/devstack/harness.js';
import {
  createSigner,
  grantClaims,
  inWindowMs,
  signGrant,
  type TestSigner,
  testConsole,
} from '../../scripts/devstack/tokens.js';
import { createTrail, flushIo, readAll, tempDir } from './helpers.js';

let signer: TestSigner;
let dir: string;
let remove: () => Promise<void>;
let h: Harness;
let trail: AuditTrail;
let detach: () => void;

beforeAll(async () => {
  signer = await createSigner();
});

beforeEach(async () => {
  ({ dir, remove } = await tempDir());
  h = await scheduledHarness(signer);
  ({ trail } = createTrail({ dir, clock: h.clock }));
  await trail.start();
  detach = attachAudit(h.supervisor, trail, undefined, undefined, { timers: h.clock, intervalMs: 60_000 });
});

afterEach(async () => {
  detach();
  await h.supervisor.stop();
  await trail.stop();
  await remove();
});

/** Waits for the supervisor's teardown and the trail's writes, then reads the records back. */
async function records(): Promise<AuditRecord[]> {
  await settle();
  await flushIo();
  return (await readAll(dir)).records;
}

describe('attachAudit', () => {
  it('records a granted request with its session and operator', async () => {
    const claims = grantClaims(deviceId, h.clock.now(), { sid: 'ses-granted', op: 'op-anna.lind' });
    await h.supervisor.request(await signGrant(signer, claims), 'req-granted');
    expect(await records()).toEqual([
      {
        schemaVersion: 2,
        id: expect.any(String),
        at: new Date(inWindowMs).toISOString(),
        deviceId: 'dev-test',
        kind: 'request',
        requestId: 'req-granted',
        sessionId: 'ses-granted',
        operatorId: 'op-anna.lind',
        decision: 'granted',
      },
    ]);
  });

  it('records a request and its retries (same requestId, same grant) once', async () => {
    const claims = grantClaims(deviceId, h.clock.now());
    const grant = await signGrant(signer, claims);
    await Promise.all([
      h.supervisor.request(grant, 'req-retried'),
      h.supervisor.request(grant, 'req-retried'),
    ]);
    await h.supervisor.request(grant, 'req-retried');
    expect((await records()).map((r) => [r.kind, r.kind === 'request' ? r.decision : undefined])).toEqual([
      ['request', 'granted'],
    ]);
  });

  it('records a refused request with its reason and no session', async () => {
    h.supervisor.togglePrivacy();
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'req-refused');
    expect(await records()).toEqual([
      {
        schemaVersion: 2,
        id: expect.any(String),
        at: new Date(inWindowMs).toISOString(),
        deviceId: 'dev-test',
        kind: 'request',
        requestId: 'req-refused',
        decision: 'refused',
        reason: 'privacy-on',
      },
    ]);
  });

  it('records a refused request whose grant does not verify', async () => {
    await h.supervisor.request('not.a.token', 'req-garbage');
    const [record] = await records();
    expect(record).toMatchObject({ kind: 'request', decision: 'refused', reason: 'malformed' });
  });

  it('records a session end with who, when, how long and why', async () => {
    const claims = grantClaims(deviceId, h.clock.now(), { sid: 'ses-1', op: 'op-anna.lind' });
    await h.supervisor.request(await signGrant(signer, claims), 'req-1');
    await settle();
    h.clock.advance(23_500);
    h.supervisor.hangup('ses-1', testConsole.hangupSecret);
    const all = await records();
    expect(all.map((record) => record.kind)).toEqual(['request', 'session-end']);
    expect(all[1]).toEqual({
      schemaVersion: 2,
      id: expect.any(String),
      at: new Date(inWindowMs + 23_500).toISOString(),
      deviceId: 'dev-test',
      kind: 'session-end',
      requestId: 'req-1',
      sessionId: 'ses-1',
      operatorId: 'op-anna.lind',
      startedAt: new Date(inWindowMs).toISOString(),
      durationMs: 23_500,
      endReason: 'operator-hangup',
      endedBy: 'grant-holder',
    });
  });

  it('records the end of a view cut off by a privacy press', async () => {
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'req-1');
    await settle();
    h.clock.advance(4_000);
    h.supervisor.togglePrivacy();
    const ended = (await records()).find((record) => record.kind === 'session-end');
    expect(ended).toMatchObject({ endReason: 'privacy-on', durationMs: 4_000 });
  });

  it('records the end of a view at shutdown', async () => {
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'req-1');
    await settle();
    await h.supervisor.stop();
    const ended = (await records()).find((record) => record.kind === 'session-end');
    expect(ended).toMatchObject({ endReason: 'shutdown' });
  });

  it('makes distinct ids for every record', async () => {
    for (let n = 0; n < 3; n += 1) {
      const claims = grantClaims(deviceId, h.clock.now());
      await h.supervisor.request(await signGrant(signer, claims), `req-${n}`);
      await settle();
      h.supervisor.hangup(claims.sid, testConsole.hangupSecret);
      await settle();
    }
    const all = await records();
    expect(all).toHaveLength(6);
    expect(new Set(all.map((record) => record.id)).size).toBe(6);
  });

  it('stops recording once detached', async () => {
    detach();
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'req-1');
    expect(await records()).toEqual([]);
  });

  it('counts refusals of a reason after the first in an interval in one refusals record', async () => {
    h.supervisor.togglePrivacy();
    const grant = await signGrant(signer, grantClaims(deviceId, h.clock.now()));
    const firstMs = h.clock.now();
    await h.supervisor.request(grant, 'req-flood-0');
    for (let i = 1; i <= 500; i += 1) {
      h.clock.advance(10);
      await h.supervisor.request(grant, `req-flood-${i}`);
    }
    const lastMs = h.clock.now();
    expect((await records()).map((record) => record.kind)).toEqual(['request']);
    h.clock.advance(60_000);
    const made = await records();
    expect(made.map((record) => record.kind)).toEqual(['request', 'refusals']);
    expect(made[0]).toMatchObject({
      requestId: 'req-flood-0',
      reason: 'privacy-on',
      at: new Date(firstMs).toISOString(),
    });
    expect(made[1]).toMatchObject({
      kind: 'refusals',
      reason: 'privacy-on',
      count: 500,
      from: new Date(firstMs + 10).toISOString(),
      to: new Date(lastMs).toISOString(),
      at: new Date(lastMs).toISOString(),
    });
  });

  it('gives the first refusal of the next interval its own record again', async () => {
    h.supervisor.togglePrivacy();
    const grant = await signGrant(signer, grantClaims(deviceId, h.clock.now()));
    await h.supervisor.request(grant, 'req-a');
    h.clock.advance(60_001);
    await h.supervisor.request(grant, 'req-b');
    expect(
      (await records()).map((record) => (record.kind === 'request' ? record.requestId : record.kind)),
    ).toEqual(['req-a', 'req-b']);
  });

  it('counts each reason on its own and keeps every granted request', async () => {
    h.supervisor.togglePrivacy();
    const grant = await signGrant(signer, grantClaims(deviceId, h.clock.now()));
    await h.supervisor.request(grant, 'req-privacy-1');
    await h.supervisor.request(grant, 'req-privacy-2');
    await h.supervisor.request('not-a-token', 'req-malformed-1');
    await h.supervisor.request('not-a-token', 'req-malformed-2');
    await h.supervisor.request('not-a-token', 'req-malformed-3');
    h.supervisor.togglePrivacy();
    await settle();
    const claims = grantClaims(deviceId, h.clock.now(), { sid: 'ses-kept' });
    await h.supervisor.request(await signGrant(signer, claims), 'req-granted');
    detach();
    const made = await records();
    expect(made.filter((record) => record.kind === 'request' && record.decision === 'granted')).toHaveLength(
      1,
    );
    expect(
      made.filter((record) => record.kind === 'refusals').map((record) => [record.reason, record.count]),
    ).toEqual(
      expect.arrayContaining([
        ['privacy-on', 1],
        ['malformed', 2],
      ]),
    );
    expect(made.filter((record) => record.kind === 'request' && record.decision === 'refused')).toHaveLength(
      2,
    );
  });
});
