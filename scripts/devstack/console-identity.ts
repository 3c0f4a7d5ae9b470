// A console's identity for one look, as a real console makes it before the central service signs the
// grant: its own DTLS certificate (the grant's `fp` claim names its SHA-256 fingerprint, so only this
// console can receive the picture) and a hang-up secret (the grant's `hup` claim is its hash, so only
// this console can end the look). Used by the werift consoles of the tests, the benches and the demo.
import { randomBytes } from 'node:crypto';
import {
  CipherContext,
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  SignatureAlgorithm,
} from 'werift';
import { hangupHash } from '../../device/core/index.js';

export interface ConsoleIdentity {
  /** For `new RTCPeerConnection({ certificates: [certificate] })`. */
  certificate: RTCCertificate;
  /** The grant's `fp` claim. */
  fingerprint: string;
  /** Sent with the hang-up. */
  hangupSecret: string;
  /** The grant's `hup` claim. */
  hangupHash: string;
}

export async function createConsoleIdentity(): Promise<ConsoleIdentity> {
  const signatureHash = { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 };
  const { certPem, keyPem } = await CipherContext.createSelfSignedCertificateWithKey(
    signatureHash,
    NamedCurveAlgorithm.secp256r1_23,
  );
  const certificate = new RTCCertificate(keyPem, certPem, signatureHash);
  const fingerprint = certificate.getFingerprints().find((f) => f.algorithm === 'sha-256')?.value;
  if (fingerprint === undefined) throw new Error('werift gave the certificate no sha-256 fingerprint');
  const hangupSecret = randomBytes(32).toString('base64url');
  return {
    certificate,
    fingerprint: fingerprint.toUpperCase(),
    hangupSecret,
    hangupHash: hangupHash(hangupSecret),
  };
}

/** The grant claims that bind a look to `identity`. */
export function holderClaims(identity: ConsoleIdentity): { fp: string; hup: string } {
  return { fp: identity.fingerprint, hup: identity.hangupHash };
}
