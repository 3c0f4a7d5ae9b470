// Times in details and logs: ISO 8601, and never a throw for a reading that is not a time.
export function isoTime(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `invalid time (${ms})`;
}
