// Pure checks on the console's signalling, so only the holder of a look's grant can steer it:
// - an answer counts only if every DTLS fingerprint in it is the SHA-256 the grant names (DTLS itself then
//   guarantees that only the holder of that certificate's private key completes the handshake);
// - a remote ICE candidate counts only if it is a UDP candidate with an IP literal (no host names, no
//   mDNS `.local` names: resolving them would make the device send queries on every interface), with
//   the ICE ufrag of the answer that was taken, and only up to a small number per look;
// - a hang-up counts only if it carries the secret whose SHA-256 the grant names.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { SignalRefusal } from '../protocol/reasons.js';
import type { IceCandidate } from '../protocol/signalling.js';

/** At most this many remote candidates per look, from the answer and trickled, before and after it. */
export const maxRemoteCandidates = 32;

export interface AnswerCheck {
  ok: true;
  ufrag: string;
  /** The SDP with every candidate line that may not be used taken out. */
  sdp: string;
  /** Candidate lines kept. */
  candidates: number;
  /** Candidate lines taken out, by reason. */
  refused: Partial<Record<SignalRefusal, number>>;
}

const normalise = (fingerprint: string): string => fingerprint.trim().toUpperCase();

/**
 * Checks an answer against the look's grant: the fingerprint, the ufrag, and its candidate lines
 * (`budget` is how many more remote candidates the look may take).
 */
export function checkAnswer(
  sdp: string,
  grantFingerprint: string,
  budget: number,
): AnswerCheck | { ok: false; reason: SignalRefusal } {
  const lines = sdp.split(/\r?\n/);
  const fingerprints: Array<{ algorithm: string; value: string }> = [];
  const ufrags = new Set<string>();
  for (const line of lines) {
    const fingerprint = /^a=fingerprint:(\S+)\s+(\S+)\s*$/i.exec(line);
    if (fingerprint) fingerprints.push({ algorithm: fingerprint[1] ?? '', value: fingerprint[2] ?? '' });
    const ufrag = /^a=ice-ufrag:(\S+)\s*$/.exec(line);
    if (ufrag?.[1]) ufrags.add(ufrag[1]);
  }
  // Every fingerprint must be the grant's: werift would accept a certificate matching any one of them.
  const expected = normalise(grantFingerprint);
  if (
    fingerprints.length === 0 ||
    !fingerprints.every((f) => f.algorithm.toLowerCase() === 'sha-256' && normalise(f.value) === expected)
  ) {
    return { ok: false, reason: 'fingerprint-mismatch' };
  }
  const [ufrag, ...others] = [...ufrags];
  if (ufrag === undefined || others.length > 0) return { ok: false, reason: 'no-ice-ufrag' };
  const refused: Partial<Record<SignalRefusal, number>> = {};
  let candidates = 0;
  const kept = lines.filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    const reason =
      checkCandidateLine(line.slice(2)) ?? (candidates >= budget ? 'too-many-candidates' : undefined);
    if (reason) {
      refused[reason] = (refused[reason] ?? 0) + 1;
      return false;
    }
    candidates += 1;
    return true;
  });
  return { ok: true, ufrag, sdp: kept.join('\r\n'), candidates, refused };
}

/** Addresses a candidate may never name: unspecified, multicast and broadcast. */
function forbiddenAddress(address: string): boolean {
  const lower = address.toLowerCase();
  if (lower === '0.0.0.0' || lower === '::' || lower === '255.255.255.255') return true;
  if (isIP(address) === 4) {
    const first = Number(address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return lower.startsWith('ff');
}

/** Why an `a=candidate` value (`candidate:…`) may not be used, or undefined if it may. */
export function checkCandidateLine(candidate: string): SignalRefusal | undefined {
  const fields = candidate.trim().split(/\s+/);
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> [raddr <a> rport <p>] …
  const [foundation, , transport, , address, port, typ] = fields;
  if (!foundation?.startsWith('candidate:') || typ !== 'typ') return 'not-an-ip-address';
  if (transport?.toLowerCase() !== 'udp') return 'not-an-ip-address';
  if (address === undefined || isIP(address) === 0 || forbiddenAddress(address)) return 'not-an-ip-address';
  const portNumber = Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65_535) return 'not-an-ip-address';
  const raddr = fields.indexOf('raddr');
  if (raddr >= 0 && isIP(fields[raddr + 1] ?? '') === 0) return 'not-an-ip-address';
  return undefined;
}

/** Why a trickled candidate may not be used for a look whose answer has `ufrag` (undefined: not yet). */
export function checkCandidate(
  candidate: IceCandidate,
  ufrag: string | undefined,
): SignalRefusal | undefined {
  const line = checkCandidateLine(candidate.candidate);
  if (line) return line;
  const fragment = candidate.usernameFragment ?? undefined;
  if (fragment === undefined || (ufrag !== undefined && fragment !== ufrag)) return 'ufrag-mismatch';
  return undefined;
}

/** base64url SHA-256 of a hang-up secret, as the grant's `hup` claim carries it. */
export function hangupHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Does `secret` hash to the grant's `hup`? Compared in constant time. */
export function hangupProven(secret: string, grantHash: string): boolean {
  const actual = Buffer.from(hangupHash(secret));
  const expected = Buffer.from(grantHash);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The SHA-256 fingerprint of a DER certificate, as SDP writes it (upper-case hex pairs with colons). */
export function certificateFingerprint(der: Uint8Array): string {
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return hex.match(/../g)?.join(':') ?? '';
}
