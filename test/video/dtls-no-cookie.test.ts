// werift's DTLS server with the device's change (dtls-no-cookie.ts): a first ClientHello is answered at
// once with the ServerHello flight, no HelloVerifyRequest round trip. Real werift client and server,
// joined in memory (warm-up.ts); the oracles are the datagrams themselves (record and handshake headers
// read here, RFC 6347 4.1 and 4.2.2) and that the handshake completes with SRTP keys both sides agree on
// (memoryHandshake sends SRTP one way and decrypts it the other). A wrong transcript or message_seq
// makes the client's Finished fail, and the handshake times out.
//
// The first test runs before the change is installed in this file's process: werift's own server sends
// a HelloVerifyRequest, so the "none" assertions below can fail.

import { describe, expect, it } from 'vitest';
import { RTCDtlsTransport } from 'werift';
import { skipDtlsCookieRoundTrip, withCookie } from '../../device/video/index.js';
import { memoryHandshake } from '../../device/view/warm-up.js';

const handshakeRecord = 22;
const clientHello = 1;
const serverHello = 2;
const helloVerifyRequest = 3;

interface Seen {
  from: 'server' | 'client';
  /** The first handshake message's type in a plaintext (epoch 0) handshake datagram. */
  type: number | undefined;
  messageSeq: number | undefined;
}

/** Record header: type(1) version(2) epoch(2) sequence(6) length(2); handshake: type(1) length(3) seq(2). */
function read(from: Seen['from'], datagram: Buffer): Seen {
  if (datagram[0] !== handshakeRecord || datagram.readUInt16BE(3) !== 0) {
    return { from, type: undefined, messageSeq: undefined };
  }
  return { from, type: datagram[13], messageSeq: datagram.readUInt16BE(17) };
}

async function run(drop?: (seen: Seen, index: number) => boolean): Promise<Seen[]> {
  const certificate = await RTCDtlsTransport.SetupCertificate();
  const seen: Seen[] = [];
  await memoryHandshake(certificate, (from, datagram) => {
    const entry = read(from, datagram);
    seen.push(entry);
    return drop?.(entry, seen.length - 1) !== true;
  });
  return seen;
}

describe('DTLS server without the cookie round trip', () => {
  it('control: werift as it comes sends a HelloVerifyRequest and a ServerHello with message_seq 1', async () => {
    const seen = await run();
    const server = seen.filter((entry) => entry.from === 'server' && entry.type !== undefined);
    expect(server[0]).toEqual({ from: 'server', type: helloVerifyRequest, messageSeq: 0 });
    expect(server.find((entry) => entry.type === serverHello)?.messageSeq).toBe(1);
    expect(seen.filter((entry) => entry.from === 'client' && entry.type === clientHello)).toHaveLength(2);
  });

  it('answers the first ClientHello with the ServerHello flight (message_seq 0), and the handshake completes', async () => {
    skipDtlsCookieRoundTrip();
    const seen = await run();
    expect(seen.some((entry) => entry.type === helloVerifyRequest)).toBe(false);
    expect(seen.filter((entry) => entry.from === 'client' && entry.type === clientHello)).toHaveLength(1);
    const first = seen.find((entry) => entry.from === 'server');
    expect(first).toEqual({ from: 'server', type: serverHello, messageSeq: 0 });
    // Flight 4's messages follow on: Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone.
    const flight4 = seen.filter((entry) => entry.from === 'server' && entry.type !== undefined);
    expect(flight4.slice(0, 5).map((entry) => [entry.type, entry.messageSeq])).toEqual([
      [2, 0],
      [11, 1],
      [12, 2],
      [13, 3],
      [14, 4],
    ]);
  });

  it('sends the flight again, not a HelloVerifyRequest, when the client resends its ClientHello', async () => {
    skipDtlsCookieRoundTrip();
    // The whole first ServerHello flight is lost: the client sends its ClientHello again (after 0.5 s).
    const seen = await run((entry, index) => entry.from === 'server' && index < 6);
    expect(seen.some((entry) => entry.type === helloVerifyRequest)).toBe(false);
    const hellos = seen.filter((entry) => entry.from === 'client' && entry.type === clientHello);
    expect(hellos.length).toBeGreaterThanOrEqual(2);
    const answers = seen.filter((entry) => entry.from === 'server' && entry.type === serverHello);
    expect(answers.length).toBeGreaterThanOrEqual(2);
    expect(answers.every((entry) => entry.messageSeq === 0)).toBe(true);
  });

  it('puts a cookie in place of the empty one, and refuses a ClientHello that has one', () => {
    // version, random, session id (2 bytes), empty cookie, then the suites and the rest.
    const body = Buffer.concat([
      Buffer.from([0xfe, 0xfd]),
      Buffer.alloc(32, 7),
      Buffer.from([2, 0xaa, 0xbb]),
      Buffer.from([0]),
      Buffer.from([0, 2, 0xc0, 0x2b, 1, 0]),
    ]);
    const cookie = Buffer.from('0123456789abcdefghij');
    const out = withCookie(body, cookie);
    expect(out.subarray(0, 37)).toEqual(body.subarray(0, 37));
    expect(out[37]).toBe(20);
    expect(out.subarray(38, 58)).toEqual(cookie);
    expect(out.subarray(58)).toEqual(body.subarray(38));
    expect(() => withCookie(out, cookie)).toThrow(/without a cookie/);
  });
});
