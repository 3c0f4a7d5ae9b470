// The stand-by media process's warm-up (warm-up.ts): DTLS handshakes and SRTP between two endpoints of
// this process, joined in memory. Oracles: /proc/self/fd (no socket is opened while it runs), and the
// SRTP packets that memoryHandshake sends one way and decrypts the other (a handshake that failed or
// derived different keys makes it reject). How much time the warm-up saves is a figure of
// `npm run bench` (look), not asserted here.

import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RTCDtlsTransport } from 'werift';
import { memoryHandshake, warmUp } from '../../device/view/warm-up.js';

/** This process's open sockets (inodes). */
function sockets(): string[] {
  const found: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('socket:')) found.push(target);
    } catch {
      // Closed while listed (the listing's own descriptor).
    }
  }
  return found.sort();
}

describe('media warm-up', () => {
  it('runs DTLS handshakes and SRTP in memory, with no socket open meanwhile', async () => {
    const certificate = await RTCDtlsTransport.SetupCertificate();
    const before = sockets();
    const during: string[][] = [];
    let datagrams = 0;
    await memoryHandshake(certificate, () => {
      datagrams += 1;
      during.push(sockets());
      return true;
    });
    // A full handshake: ClientHello to the server's Finished, about a dozen datagrams.
    expect(datagrams).toBeGreaterThanOrEqual(10);
    for (const now of during) expect(now).toEqual(before);
    expect(sockets()).toEqual(before);
  });

  it('completes, and leaves no socket behind', async () => {
    const before = sockets();
    await expect(warmUp(1)).resolves.toBeGreaterThan(0);
    expect(sockets()).toEqual(before);
  });
});
