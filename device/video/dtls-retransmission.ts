// werift's DTLS (0.24.4, and 0.25.2 alike) cannot finish a handshake after some losses and delays.
//
// The server cannot finish a handshake whose client flight 5 was
// partly lost. The client (the console: a browser or werift) sends Certificate, ClientKeyExchange,
// CertificateVerify, ChangeCipherSpec and Finished, and sends all of them again if the server's last
// flight does not come. werift's server takes every copy: on a second ClientKeyExchange it derives the
// extended master secret again, over a handshake cache that now also holds the CertificateVerify of the
// first copy, so the keys are wrong and the client's Finished never decrypts; a CertificateVerify before
// its Certificate throws and fails the transport. One lost packet out of the first copy (the Finished,
// or the ClientKeyExchange) and the look never connects: in the lab's 4G and bad link about one look in
// eight ended peer-gone at the negotiation deadline (DTLS logs: "decrypt failed" on every retransmitted
// Finished).
//
// The repair, on the server only: the client's flight-5 messages are taken once each and in their order
// (RFC 5246 7.4: Certificate, ClientKeyExchange, CertificateVerify, Finished). A copy of one already taken
// is dropped (it changes nothing), as is a message that comes before the ones it follows (the client sends
// the whole flight again). Finished always passes once the others are in: the first completes the
// handshake, a later one makes werift send its last flight again (RFC 6347 4.2.4).
//
// The client fails its transport on a second HelloVerifyRequest (Flight3 throws): the server answers the
// ClientHello and its retransmission, which werift sends after 0.5 s, so on a round trip over 0.5 s (the
// lab's bad link through the relay) the werift console's look failed with the device's DTLS connected
// and no picture. The repair: once flight 3 is sent, a HelloVerifyRequest is dropped. Consoles are the
// DTLS client (werift in the tests and benches); the device takes it too, in case it ever is one.
//
// Installed once, on werift's exported DtlsServer and DtlsClient classes, which RTCDtlsTransport
// instantiates.
import { DtlsClient, DtlsServer } from 'werift';

type Handshake = ReturnType<DtlsServer['handleFragmentHandshake']>[number];

const helloVerifyRequest = 3;
const certificate = 11;
const certificateVerify = 15;
const clientKeyExchange = 16;
const finished = 20;
/** werift's handshake cache keeps the client's second flight under flight 5. */
const clientSecondFlight = 5;

/** The flight-5 messages that must be in hand before `type` is taken; undefined for other messages. */
function predecessors(type: number, certificateRequest: boolean): number[] | undefined {
  switch (type) {
    case certificate:
      return [];
    case clientKeyExchange:
      return certificateRequest ? [certificate] : [];
    case certificateVerify:
      return [certificate, clientKeyExchange];
    case finished:
      return certificateRequest ? [certificate, clientKeyExchange, certificateVerify] : [clientKeyExchange];
    default:
      return undefined;
  }
}

/**
 * Which of `handshakes` (whole messages, possibly in fragments) a DTLS server may take, given the
 * flight-5 message types it has already taken.
 */
export function flight5InOrder(
  handshakes: readonly Handshake[],
  taken: ReadonlySet<number>,
  certificateRequest: boolean,
): Handshake[] {
  const takenNow = new Set<number>();
  return handshakes.filter((handshake) => {
    const type = handshake.msg_type;
    const before = predecessors(type, certificateRequest);
    if (before === undefined) return true;
    if (type !== finished && taken.has(type)) return false;
    if (!before.every((t) => taken.has(t) || takenNow.has(t))) return false;
    takenNow.add(type);
    return true;
  });
}

let installed = false;

/** Installs both repairs on werift's DtlsServer and DtlsClient; idempotent. */
export function repairDtlsRetransmissions(): void {
  if (installed) return;
  installed = true;
  const server = DtlsServer.prototype.handleFragmentHandshake;
  DtlsServer.prototype.handleFragmentHandshake = function (
    this: DtlsServer,
    messages: Handshake[],
  ): Handshake[] {
    const complete = server.call(this, messages);
    const cached = this.dtls.handshakeCache[clientSecondFlight]?.data ?? [];
    const taken = new Set(cached.map((handshake) => handshake.msg_type));
    return flight5InOrder(complete, taken, this.options.certificateRequest === true);
  };
  const client = DtlsClient.prototype.handleFragmentHandshake;
  DtlsClient.prototype.handleFragmentHandshake = function (
    this: DtlsClient,
    messages: Handshake[],
  ): Handshake[] {
    const complete = client.call(this, messages);
    if (this.dtls.flight < 3) return complete;
    return complete.filter((handshake) => handshake.msg_type !== helloVerifyRequest);
  };
}
