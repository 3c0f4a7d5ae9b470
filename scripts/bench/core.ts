// Figures for the functional core: how long a grant takes to verify and decide, and how long a
// privacy press takes to close the frame gate and turn the LED off (simulated GPIO, real supervisor).
import { performance } from 'node:perf_hooks';
import { verifyGrant } from '../../device/auth/index.js';
import { decide } from '../../device/core/index.js';
import { openWindowAt } from '../../device/schedule/index.js';
import { createHarness, deviceId, limits, settle } from '../devstack/harness.js';
import {
  createSigner,
  grantClaims,
  inWindowMs,
  nightlySchedule,
  signGrant,
  signSchedule,
} from '../devstack/tokens.js';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

// Tuesday 2026-11-24 23:00 in Stockholm: inside the nightly window.
const signer = await createSigner();
const schedule = nightlySchedule(deviceId);

const tokens = await Promise.all(
  Array.from({ length: 2000 }, () => signGrant(signer, grantClaims(deviceId, inWindowMs))),
);
let start = performance.now();
for (const token of tokens) {
  const grant = await verifyGrant(token, signer.keys);
  decide({
    nowMs: inWindowMs,
    deviceId,
    timeZone: 'Europe/Stockholm',
    limits,
    schedule,
    conditions: { privacyOn: false, clockTrusted: true, ledFault: false },
    viewActive: false,
    usedNonces: {},
    grant,
  });
}
let elapsed = performance.now() - start;
console.log(
  `verify + decide: ${(elapsed / tokens.length).toFixed(3)} ms per grant (${tokens.length} grants)`,
);

start = performance.now();
for (let i = 0; i < 20_000; i += 1) openWindowAt(inWindowMs + i * 60_000, schedule, 'Europe/Stockholm');
elapsed = performance.now() - start;
console.log(`window evaluation: ${((elapsed / 20_000) * 1000).toFixed(1)} µs per instant`);

const gateMs: number[] = [];
const ledMs: number[] = [];
for (let i = 0; i < 200; i += 1) {
  const h = await createHarness({ signer, startMs: inWindowMs });
  await h.supervisor.applySchedule(await signSchedule(signer, schedule));
  await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), `r${i}`);
  await settle();
  const pressAt = performance.now();
  h.supervisor.togglePrivacy();
  if (!h.supervisor.allowFrames()) gateMs.push(performance.now() - pressAt);
  while (h.gpio.viewingLed.value) await new Promise<void>((resolve) => setImmediate(resolve));
  ledMs.push(performance.now() - pressAt);
  await h.supervisor.stop();
}
console.log(
  `privacy press → gate closed: p50 ${percentile(gateMs, 50).toFixed(3)} ms, p99 ${percentile(gateMs, 99).toFixed(3)} ms`,
);
console.log(
  `privacy press → LED off (simulated GPIO): p50 ${percentile(ledMs, 50).toFixed(3)} ms, p99 ${percentile(ledMs, 99).toFixed(3)} ms`,
);
