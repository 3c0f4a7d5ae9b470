// Used nonces are kept until the time floor, not the wall clock, has passed their grant's expiry. A
// wall clock set back (within the floor's tolerance, or by anyone the floor does not stop) would
// otherwise bring back grants whose nonces were already dropped as expired.

/**
 * Pure: the nonces (jti → grant expiry, epoch seconds) that a trusted clock could still see unexpired.
 * `floorMs` is the lowest wall-clock time the clock check still trusts, TimeFloor.trustedFromMs (the
 * floor minus its tolerance): a grant expires when now ≥ exp, so a nonce whose expiry is at or below
 * that time can never be replayed while the clock is trusted.
 */
export function pruneNoncesByFloor(
  nonces: Readonly<Record<string, number>>,
  floorMs: number,
): Record<string, number> {
  const kept: Record<string, number> = {};
  for (const [nonce, expS] of Object.entries(nonces)) {
    // Not a finite expiry: keep it; refusing a replay is the safe side of doubt.
    if (!Number.isFinite(expS) || expS * 1000 > floorMs) kept[nonce] = expS;
  }
  return kept;
}
