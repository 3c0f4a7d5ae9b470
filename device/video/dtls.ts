// werift's DTLS as the device runs it: the one call that installs every change, for the look's peer
// (peer.ts) and the media process's warm-up alike, so both run the same DTLS code.
import { checkDtlsServerSignature } from './dtls-client.js';
import { repairDtlsRetransmissions } from './dtls-retransmission.js';
import { tuneDtlsServer } from './dtls-server.js';

/** Installs every change the device makes to werift's DTLS; idempotent. */
export function installDtlsChanges(): void {
  // Consoles answer as DTLS client (setup:active), so the device is mostly the server: werift's must
  // survive a partly lost flight 5 (dtls-retransmission.ts, which repairs werift's client too), answers
  // a ClientHello without the cookie round trip, sends a flight in one datagram and checks the client's
  // CertificateVerify (dtls-server.ts). As the client (a console that answers setup:passive) it checks
  // the server's key-exchange signature (dtls-client.ts).
  repairDtlsRetransmissions();
  tuneDtlsServer();
  checkDtlsServerSignature();
}
