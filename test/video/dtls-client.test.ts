// werift's DTLS client with the device's check (dtls-client.ts): the server's ServerKeyExchange must be
// signed with the key of the certificate it sends. Real werift client and server joined in memory
// (dtls-pipe.ts); the oracle is the outcome of the handshake (both ends connected with the same SRTP
// keys, or the client's error). The first test runs before the check is installed in this file's
// process: werift as it comes connects to the impostor, so the last test can fail.

import { describe, expect, it } from 'vitest';
import { checkDtlsServerSignature, repairDtlsRetransmissions } from '../../device/video/index.js';
import { createConsoleIdentity } from '../../scripts/devstack/console-identity.js';
import { dtlsPipe, impostorOutcomes } from './dtls-pipe.js';

describe('werift DTLS client as the device runs it', () => {
  it("control: werift as it comes connects to a server that does not hold its certificate's key", async () => {
    repairDtlsRetransmissions();
    expect(await impostorOutcomes('server')).toEqual(['connected', 'connected']);
  });

  it("refuses a server whose key exchange is not signed with its certificate's key", async () => {
    repairDtlsRetransmissions();
    checkDtlsServerSignature();
    // The impostor sends the console's certificate, which the grant's fingerprint check would pass.
    expect(await impostorOutcomes('server')).toEqual([
      'connected',
      "client error: Error: the server's key exchange signature does not verify",
    ]);
  });

  it('connects when the ServerKeyExchange arrives before the Certificate', async () => {
    repairDtlsRetransmissions();
    checkDtlsServerSignature();
    const [device, console] = await Promise.all([createConsoleIdentity(), createConsoleIdentity()]);
    // Plaintext handshake records from the server: the Certificate (11) comes 30 ms late.
    const pipe = dtlsPipe(
      device.certificate,
      (from, datagram) =>
        from === 'server' && datagram[0] === 22 && datagram.readUInt16BE(3) === 0 && datagram[13] === 11
          ? [30]
          : [0],
      {
        timeoutMs: 3000,
        server: { certificate: console.certificate, signingKey: console.certificate.privateKey },
      },
    );
    expect(await pipe.outcome).toBe('connected');
    pipe.close();
  });
});
