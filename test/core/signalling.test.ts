// The pure checks that bind a look to its console: answers by DTLS fingerprint, candidates by ufrag,
// address and count, hang-ups by secret.
import { describe, expect, it } from 'vitest';
import {
  certificateFingerprint,
  checkAnswer,
  checkCandidate,
  checkCandidateLine,
  hangupHash,
  hangupProven,
} from '../../device/core/index.js';

const fp = Array.from({ length: 32 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0')).join(':');
const other = fp.replace(/^00/, 'FF');

function answer(lines: string[]): string {
  return [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    ...lines,
    '',
  ].join('\r\n');
}

describe('checkAnswer', () => {
  it('takes an answer whose every fingerprint is the grant one, in any letter case', () => {
    const result = checkAnswer(
      answer([`a=fingerprint:SHA-256 ${fp.toLowerCase()}`, 'a=ice-ufrag:abcd']),
      fp,
      32,
    );
    expect(result).toMatchObject({ ok: true, ufrag: 'abcd', candidates: 0 });
  });

  it('refuses an answer with another fingerprint, with none, or with a second one beside the right one', () => {
    expect(checkAnswer(answer([`a=fingerprint:sha-256 ${other}`, 'a=ice-ufrag:abcd']), fp, 32)).toEqual({
      ok: false,
      reason: 'fingerprint-mismatch',
    });
    expect(checkAnswer(answer(['a=ice-ufrag:abcd']), fp, 32)).toEqual({
      ok: false,
      reason: 'fingerprint-mismatch',
    });
    const both = answer([
      `a=fingerprint:sha-256 ${fp}`,
      `a=fingerprint:sha-1 ${fp.slice(0, 59)}`,
      'a=ice-ufrag:x',
    ]);
    expect(checkAnswer(both, fp, 32)).toEqual({ ok: false, reason: 'fingerprint-mismatch' });
  });

  it('refuses an answer without an ICE ufrag, or with two', () => {
    expect(checkAnswer(answer([`a=fingerprint:sha-256 ${fp}`]), fp, 32)).toEqual({
      ok: false,
      reason: 'no-ice-ufrag',
    });
    const two = answer([`a=fingerprint:sha-256 ${fp}`, 'a=ice-ufrag:a', 'a=ice-ufrag:b']);
    expect(checkAnswer(two, fp, 32)).toEqual({ ok: false, reason: 'no-ice-ufrag' });
  });

  it('takes the answer but strips host names and candidates past the budget out of its SDP', () => {
    const sdp = answer([
      `a=fingerprint:sha-256 ${fp}`,
      'a=ice-ufrag:abcd',
      'a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host',
      'a=candidate:2 1 udp 2122260223 3f1c2a.local 50001 typ host',
      'a=candidate:3 1 udp 2122260223 192.0.2.11 50002 typ host',
    ]);
    const result = checkAnswer(sdp, fp, 1);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.candidates).toBe(1);
    expect(result.refused).toEqual({ 'not-an-ip-address': 1, 'too-many-candidates': 1 });
    expect(result.sdp).toContain('192.0.2.10');
    expect(result.sdp).not.toContain('.local');
    expect(result.sdp).not.toContain('192.0.2.11');
  });
});

describe('checkCandidateLine', () => {
  it.each([
    ['candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host', undefined],
    ['candidate:1 1 UDP 2122260223 2001:db8::1 50000 typ host', undefined],
    ['candidate:2 1 udp 1686052607 198.51.100.7 61623 typ srflx raddr 192.0.2.10 rport 50000', undefined],
    // Relay candidates (a TURN server's address) are IP literals too; Chromium's have raddr 0.0.0.0.
    ['candidate:3 1 udp 41885439 100.64.0.1 49160 typ relay raddr 100.64.1.2 rport 40123', undefined],
    ['candidate:3 1 udp 41885439 100.64.0.1 49161 typ relay raddr 0.0.0.0 rport 0', undefined],
    ['candidate:1 1 udp 2122260223 camera-42.local 50000 typ host', 'not-an-ip-address'],
    ['candidate:1 1 udp 2122260223 example.org 50000 typ host', 'not-an-ip-address'],
    ['candidate:1 1 tcp 2122260223 192.0.2.10 9 typ host tcptype active', 'not-an-ip-address'],
    ['candidate:1 1 udp 2122260223 0.0.0.0 50000 typ host', 'not-an-ip-address'],
    ['candidate:1 1 udp 2122260223 239.1.2.3 50000 typ host', 'not-an-ip-address'],
    ['candidate:1 1 udp 2122260223 ff02::fb 5353 typ host', 'not-an-ip-address'],
    ['candidate:1 1 udp 2122260223 192.0.2.10 0 typ host', 'not-an-ip-address'],
    [
      'candidate:2 1 udp 1686052607 198.51.100.7 61623 typ srflx raddr host.local rport 1',
      'not-an-ip-address',
    ],
    ['garbage', 'not-an-ip-address'],
  ])('%s → %s', (line, expected) => {
    expect(checkCandidateLine(line)).toBe(expected);
  });
});

describe('checkCandidate', () => {
  const candidate = { candidate: 'candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host', sdpMid: '0' };

  it('needs the ufrag of the answer that was taken, and some ufrag before one is', () => {
    expect(checkCandidate({ ...candidate, usernameFragment: 'abcd' }, 'abcd')).toBeUndefined();
    expect(checkCandidate({ ...candidate, usernameFragment: 'zzzz' }, 'abcd')).toBe('ufrag-mismatch');
    expect(checkCandidate(candidate, undefined)).toBe('ufrag-mismatch');
    expect(checkCandidate({ ...candidate, usernameFragment: 'abcd' }, undefined)).toBeUndefined();
  });

  it('names a host name as such even when the ufrag is wrong too', () => {
    const hostname = { candidate: 'candidate:1 1 udp 1 a.local 5353 typ host', usernameFragment: 'x' };
    expect(checkCandidate(hostname, 'abcd')).toBe('not-an-ip-address');
  });
});

describe('hang-up secrets and certificate fingerprints', () => {
  it('proves a hang-up only with the secret whose hash the grant carries', () => {
    const secret = 'vN3kQ8pL2xR7tY5wZ1aB4cD6eF9gH0jK3mN5qS7uW2y';
    // The value the protocol document shows for this secret (an oracle outside the code).
    expect(hangupHash(secret)).toBe('_ZtVgg0ECJLhL8dblULp0xOceCkqyg0EKxNby00IIbU');
    expect(hangupProven(secret, hangupHash(secret))).toBe(true);
    expect(hangupProven(`${secret}x`, hangupHash(secret))).toBe(false);
    expect(hangupProven(secret, 'short')).toBe(false);
  });

  it('writes a SHA-256 fingerprint as SDP does', () => {
    // SHA-256 of the empty input, a published constant.
    expect(certificateFingerprint(new Uint8Array())).toBe(
      'E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55',
    );
  });
});
