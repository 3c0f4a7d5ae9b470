// werift's DTLS client (0.24.4) takes the server's ServerKeyExchange without checking its signature. The
// device is the DTLS client when a console answers `a=setup:passive` (protocol.md allows it). Then a
// party that sends the console's certificate (public: every DTLS 1.2 handshake carries it in the clear)
// passes the grant's fingerprint check (peer.ts) without the console's private key, and would get the
// picture. The signature is now checked with the public key of the server's certificate, over the two
// randoms and the key-exchange parameters (RFC 4492 5.4), when the server's Finished comes (by then both
// are in werift's handshake cache, whatever order their datagrams came in): one that does not verify
// fails the handshake before werift reports it connected, so no media key is ever used.
// The server side's counterpart, the client's CertificateVerify, is in dtls-server.ts.
//
// Installed once, on werift's exported DtlsClient class, which RTCDtlsTransport instantiates.
import { DtlsClient } from 'werift';
import { type Handler, type Handshake, signedWith, wrapHandshakeHandler } from './dtls-hooks.js';

const serverKeyExchange = 12;
const finished = 20;
/** TLS HashAlgorithm ids werift's servers and browsers use for ECDHE signatures. */
const hashes: Record<number, string> = { 4: 'sha256', 5: 'sha384', 6: 'sha512' };

/**
 * Whether a ServerKeyExchange body (curve type 1, named curve 2, public key length 1, key, hash 1,
 * signature algorithm 1, signature length 2, signature) is signed with `certificate`'s key.
 */
export function serverKeyExchangeVerifies(
  body: Buffer,
  clientRandom: Buffer,
  serverRandom: Buffer,
  certificate: Buffer,
): boolean {
  const keyLength = body[3];
  if (keyLength === undefined || body.length < 4 + keyLength + 4) return false;
  const params = body.subarray(0, 4 + keyLength);
  const hash = hashes[body[4 + keyLength]!];
  const signatureLength = body.readUInt16BE(6 + keyLength);
  const signature = body.subarray(8 + keyLength, 8 + keyLength + signatureLength);
  if (hash === undefined || signature.length !== signatureLength) return false;
  return signedWith(certificate, hash, Buffer.concat([clientRandom, serverRandom, params]), signature);
}

/** Whether the ServerKeyExchange werift took is signed with the key of the certificate it took. */
function serverSigned(client: DtlsClient): boolean {
  const { localRandom, remoteRandom, remoteCertificate } = client.cipher;
  const exchange = client.dtls.sortedHandshakeCache.find((taken) => taken.msg_type === serverKeyExchange);
  if (localRandom === undefined || remoteRandom === undefined || remoteCertificate === undefined) {
    return false;
  }
  if (exchange === undefined) return false;
  return serverKeyExchangeVerifies(
    exchange.fragment,
    localRandom.serialize(),
    remoteRandom.serialize(),
    remoteCertificate,
  );
}

let installed = false;

/** Makes werift's DTLS client check the server's key-exchange signature; idempotent. */
export function checkDtlsServerSignature(): void {
  if (installed) return;
  installed = true;
  wrapHandshakeHandler(DtlsClient.prototype, (client, handle: Handler) => (assembled: Handshake[]) => {
    const finishing = !client.connected && assembled.some((handshake) => handshake.msg_type === finished);
    // werift fails the transport with this (RTCDtlsTransport 'failed'), and logs it.
    if (finishing && !serverSigned(client)) {
      return Promise.reject(new Error("the server's key exchange signature does not verify"));
    }
    return handle(assembled);
  });
}
