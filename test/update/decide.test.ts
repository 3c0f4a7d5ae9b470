// decideUpdate: when a verified manifest may be acted on. One behaviour per test.
import { describe, expect, it } from 'vitest';
import type { UpdateClaims } from '../../device/protocol/update.js';
import { compareVersions } from '../../device/protocol/update.js';
import { decideUpdate, type UpdateFacts } from '../../device/update/index.js';

const nowMs = Date.UTC(2026, 11, 1, 12);
const artifact = { url: 'https://updates.test/tk_1.1.0_arm64.deb', sha256: 'a'.repeat(64) };
const manifest: UpdateClaims = { aud: 'cam-test', version: '1.1.0', packages: { arm64: artifact } };
const facts = (over: Partial<UpdateFacts> = {}, claims: Partial<UpdateClaims> = {}): UpdateFacts => ({
  manifest: { ...manifest, ...claims },
  deviceId: 'cam-test',
  arch: 'arm64',
  runningVersion: '1.0.0',
  nowMs,
  clockTrusted: true,
  viewActive: false,
  windowOpenUntilMs: null,
  updateInProgress: false,
  guardInstalled: true,
  ...over,
});

describe('decideUpdate', () => {
  it('installs a newer version outside windows and looks', () => {
    expect(decideUpdate(facts())).toEqual({ action: 'install', artifact });
  });
  it('never installs during a look', () => {
    expect(decideUpdate(facts({ viewActive: true }))).toMatchObject({
      action: 'wait',
      reason: 'view-active',
    });
  });
  it('waits for an open check-in window to close', () => {
    const end = nowMs + 30 * 60_000;
    expect(decideUpdate(facts({ windowOpenUntilMs: end }))).toEqual({
      action: 'wait',
      reason: 'inside-window',
      retryAtMs: end,
    });
  });
  it('waits until the manifest is valid', () => {
    const nbf = nowMs / 1000 + 3600;
    expect(decideUpdate(facts({}, { nbf }))).toEqual({
      action: 'wait',
      reason: 'not-yet-valid',
      retryAtMs: nbf * 1000,
    });
  });
  it('waits for a trusted clock before judging validity times', () => {
    expect(decideUpdate(facts({ clockTrusted: false }))).toMatchObject({
      action: 'wait',
      reason: 'clock-unsynced',
    });
  });
  it('refuses when no update guard is installed, also over an update that waits for one', () => {
    expect(decideUpdate(facts({ guardInstalled: false, updateInProgress: true }))).toEqual({
      action: 'refuse',
      reason: 'no-update-guard',
    });
  });
  it('waits while another update is in progress', () => {
    expect(decideUpdate(facts({ updateInProgress: true }))).toMatchObject({
      action: 'wait',
      reason: 'update-in-progress',
    });
  });
  it('refuses an expired manifest', () => {
    expect(decideUpdate(facts({}, { exp: nowMs / 1000 - 1 }))).toEqual({
      action: 'refuse',
      reason: 'expired',
    });
  });
  it("refuses another device's manifest", () => {
    expect(decideUpdate(facts({}, { aud: 'cam-other' }))).toEqual({
      action: 'refuse',
      reason: 'wrong-device',
    });
  });
  it('refuses a manifest without a package for this architecture', () => {
    expect(decideUpdate(facts({ arch: 'armhf' }))).toEqual({
      action: 'refuse',
      reason: 'no-package-for-arch',
    });
  });
  it('refuses the running version', () => {
    expect(decideUpdate(facts({ runningVersion: '1.1.0' }))).toEqual({
      action: 'refuse',
      reason: 'not-newer',
    });
  });
  it('refuses an older version without rollback', () => {
    expect(decideUpdate(facts({ runningVersion: '1.2.0' }))).toEqual({
      action: 'refuse',
      reason: 'not-newer',
    });
  });
  it('installs an older version when the manifest says rollback', () => {
    expect(decideUpdate(facts({ runningVersion: '1.2.0' }, { rollback: true }))).toMatchObject({
      action: 'install',
    });
  });
});

describe('compareVersions', () => {
  it('orders by semver precedence', () => {
    const sorted = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.10.0',
    ];
    for (let i = 1; i < sorted.length; i++)
      expect(compareVersions(sorted[i - 1] ?? '', sorted[i] ?? '')).toBe(-1);
    expect(compareVersions('2.0.0+1', '2.0.0')).toBe(0);
  });
});
