// What the device's changes to werift's DTLS (dtls-server.ts, dtls-client.ts) share: a hook on each
// socket's handshake handler, and the check of a signature against a certificate.
import { verify, X509Certificate } from 'node:crypto';
import type { DtlsClient, DtlsServer } from 'werift';

type Socket = DtlsServer | DtlsClient;
export type Handshake = ReturnType<DtlsServer['handleFragmentHandshake']>[number];
export type Handler = (assembled: Handshake[]) => Promise<void>;

/**
 * Replaces each socket's handshake handler (werift's `onHandleHandshakes`, set in its constructor) with
 * `wrap(socket, handle)`, once per socket, before it handles its first handshake: werift calls
 * `handleFragmentHandshake` for every handshake record it receives and the handler right after.
 */
export function wrapHandshakeHandler<S extends Socket>(
  prototype: S,
  wrap: (socket: S, handle: Handler) => Handler,
): void {
  const wrapped = new WeakSet<S>();
  const assemble = prototype.handleFragmentHandshake;
  prototype.handleFragmentHandshake = function (this: S, messages: Handshake[]): Handshake[] {
    if (!wrapped.has(this)) {
      wrapped.add(this);
      this.onHandleHandshakes = wrap(this, this.onHandleHandshakes.bind(this));
    }
    return assemble.call(this, messages);
  };
}

/** Whether `signature` over `data` (hashed with `hash`) was made with the key of a DER `certificate`. */
export function signedWith(certificate: Buffer, hash: string, data: Buffer, signature: Buffer): boolean {
  try {
    return verify(hash, data, new X509Certificate(certificate).publicKey, signature);
  } catch {
    return false;
  }
}
