// The clock interface (clock.ts), and: is the clock trusted? A Pi has no real-time clock: after a power cut it starts from a stale time
// until NTP syncs it. Until then every grant is refused (clock-unsynced), since nbf/exp and the
// windows mean nothing. systemd-timesyncd creates its flag file once it has synchronised.
import { access } from 'node:fs/promises';

/** No device built from this code can legitimately run before this instant (2026-01-01T00:00:00Z). */
export const earliestPlausibleMs = Date.UTC(2026, 0, 1);

export type ClockCheck = () => Promise<{ trusted: boolean; detail: string }>;

export function clockCheck(deps: {
  mode: 'timesyncd' | 'file' | 'trusted';
  syncedFile: string;
  now(): number;
}): ClockCheck {
  return async () => {
    const nowMs = deps.now();
    if (nowMs < earliestPlausibleMs)
      return { trusted: false, detail: `clock reads ${new Date(nowMs).toISOString()}` };
    if (deps.mode === 'trusted') return { trusted: true, detail: 'trusted by configuration' };
    try {
      await access(deps.syncedFile);
      return { trusted: true, detail: `${deps.syncedFile} present` };
    } catch {
      return { trusted: false, detail: `${deps.syncedFile} absent: not synchronised yet` };
    }
  };
}

export { type Clock, systemClock, systemTimers, type Timers } from './clock.js';
