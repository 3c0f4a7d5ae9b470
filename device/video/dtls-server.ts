// werift's DTLS server (0.24.4) as the device runs it, three changes: two that each take time off a
// look's start on a slow link, and a check that werift leaves out:
//
// 1. No cookie round trip. werift always answers a first ClientHello with a HelloVerifyRequest (RFC 6347
//    4.2.1): the client must send its ClientHello again with the cookie before the server's first real
//    flight, one round trip per look (through a TURN relay on 4G, 80-100 ms). The cookie proves that the
//    client can receive at its source address, against floods from spoofed addresses; in WebRTC the ICE
//    connectivity checks (STUN with MESSAGE-INTEGRITY, keyed by the signalled ICE password) have already
//    proved the address that werift sends DTLS to (the nominated pair's), so browsers' DTLS servers
//    (BoringSSL in Chromium) send no HelloVerifyRequest at all. (werift takes DTLS from any source address
//    that reaches one of its candidates' sockets, but answers only the nominated pair: a spoofed ClientHello
//    reflects nothing to its source.) A first ClientHello without a cookie is now answered at once with the
//    ServerHello flight, as RFC 6347 4.2.1 allows. werift has no switch for it, so it is done around its
//    handler: the ClientHello goes through werift's own flight-2 step (which chooses the suite, curve and
//    SRTP profile and makes the key pair) with the HelloVerifyRequest it sends dropped, then through its
//    flight-4 step as if it had come back with the cookie. Two things are then set as a server that sends no
//    cookie must have them: the ServerHello's message_seq is 0 (werift starts at 1, after the
//    HelloVerifyRequest), and the handshake transcript holds the ClientHello as the client sent it (without
//    the cookie), which both Finished messages hash. A copy of that ClientHello (the client's resend when the
//    ServerHello flight was lost) gets the flight again, never a HelloVerifyRequest; a different ClientHello
//    is dropped (werift would start over, and each one would make the device send a whole flight, five times
//    its size, to the console).
//
// 2. A flight in one datagram. werift sends each handshake record of a flight in a datagram of its own:
//    the ServerHello flight is five (ServerHello, Certificate, ServerKeyExchange, CertificateRequest,
//    ServerHelloDone, about 700 bytes in all). On a link with jitter they arrive out of order, and
//    werift's client then answers a ServerHelloDone that came before the CertificateRequest without its
//    certificate: the server cannot finish, and the look waits for werift's 0.5 s retransmission (in the
//    lab's 4G runs, two to four looks in eight took 1.2-1.5 s instead of about 0.85 s). The records that
//    werift sends in one go now leave in as few datagrams as fit 1,200 bytes, in order (several records in
//    one datagram: RFC 6347 4.1.1, as BoringSSL sends them); one loss then costs the flight, never part
//    of it.
//
// 3. The client's CertificateVerify is checked. werift's server takes it without checking its signature,
//    so a client that sends the console's certificate (public: every DTLS 1.2 handshake carries it in the
//    clear) passed the grant's fingerprint check (peer.ts) without the console's private key. It is now
//    verified with the certificate's public key over the handshake messages before it (RFC 5246
//    7.4.8), in the two schemes werift's CertificateRequest offers; one that does not verify fails the
//    handshake.
//
// Installed once, on werift's exported DtlsServer class, which RTCDtlsTransport instantiates.
import { randomBytes } from 'node:crypto';
import { DtlsServer } from 'werift';
import { type Handler, type Handshake, signedWith, wrapHandshakeHandler } from './dtls-hooks.js';

const handshakeRecord = 22;
const clientHello = 1;
const helloVerifyRequest = 3;
/** A DTLS record header (13 bytes) then the handshake header's msg_type. */
const recordMsgTypeOffset = 13;
const cookieLength = 20;
/** The most one coalesced datagram holds: well under a path MTU with the TURN relay's overhead. */
export const maxDatagramBytes = 1200;

/** The cookie in a ClientHello body (RFC 6347 4.2.1): after version (2), random (32) and session id. */
function cookieAt(body: Buffer): { offset: number; length: number } | undefined {
  const sessionIdLength = body[34];
  if (sessionIdLength === undefined) return undefined;
  const offset = 35 + sessionIdLength;
  const length = body[offset];
  return length === undefined ? undefined : { offset, length };
}

/** The ClientHello body with `cookie` put in place of its empty cookie. */
export function withCookie(body: Buffer, cookie: Buffer): Buffer {
  const at = cookieAt(body);
  if (at === undefined || at.length !== 0) throw new Error('not a ClientHello without a cookie');
  return Buffer.concat([
    body.subarray(0, at.offset),
    Buffer.from([cookie.length]),
    cookie,
    body.subarray(at.offset + 1),
  ]);
}

/** A whole ClientHello (not a fragment of one) that carries no cookie. */
function isCookielessHello(handshake: Handshake): boolean {
  if (handshake.msg_type !== clientHello || handshake.fragment_length !== handshake.length) return false;
  return cookieAt(handshake.fragment)?.length === 0;
}

const isHelloVerifyRequest = (datagram: Buffer): boolean =>
  datagram[0] === handshakeRecord && datagram[recordMsgTypeOffset] === helloVerifyRequest;

const certificateVerify = 15;
/** The client's second flight in werift's handshake cache. */
const clientSecondFlight = 5;
/**
 * The signature schemes werift's CertificateRequest offers, rsa_pkcs1_sha256 (0x0401) and
 * ecdsa_secp256r1_sha256 (0x0403): their hash by their id.
 */
const offeredSchemes: Record<number, string> = { 1025: 'sha256', 1027: 'sha256' };

/**
 * Whether a CertificateVerify signs the handshake so far with the key of the client's certificate.
 * Only its first copy is checked (werift's cache keeps the first, and a copy changes nothing).
 */
function certificateVerifies(server: DtlsServer, handshake: Handshake): boolean {
  const cached = server.dtls.handshakeCache[clientSecondFlight]?.data ?? [];
  if (cached.some((taken) => taken.msg_type === certificateVerify)) return true;
  const certificate = server.cipher.remoteCertificate;
  const body = handshake.fragment;
  if (certificate === undefined || body.length < 4) return false;
  const hash = offeredSchemes[body.readUInt16BE(0)];
  const signature = body.subarray(4, 4 + body.readUInt16BE(2));
  if (hash === undefined) return false;
  const transcript = Buffer.concat(server.dtls.sortedHandshakeCache.map((taken) => taken.serialize()));
  return signedWith(certificate, hash, transcript, signature);
}

/** The ClientHello body each DTLS context answered at once (werift's renegotiation makes a new one). */
const answered = new WeakMap<DtlsServer['dtls'], Buffer>();

/** Runs werift's flights 2 and 4 for a first ClientHello without a cookie (see the top of this file). */
function answerAtOnce(server: DtlsServer, handle: Handler, hello: Handshake): Promise<void> {
  const { dtls, transport } = server;
  answered.set(dtls, Buffer.from(hello.fragment));
  dtls.cookie = randomBytes(cookieLength);
  // Flight 2, without its HelloVerifyRequest: werift's step runs synchronously up to its send.
  const send = transport.send;
  Object.assign(transport, {
    send: (datagram: Buffer, address?: unknown) =>
      isHelloVerifyRequest(datagram) ? Promise.resolve() : send(datagram, address as never),
  });
  const flight2 = handle([hello]);
  Object.assign(transport, { send });
  // Flight 4 for the same ClientHello as if it came back with the cookie; werift sets message_seq 1
  // for its ServerHello, which must be 0 here.
  const cookied = Object.assign(Object.create(Object.getPrototypeOf(hello)) as Handshake, hello);
  cookied.fragment = withCookie(hello.fragment, dtls.cookie);
  cookied.length = cookied.fragment.length;
  cookied.fragment_length = cookied.fragment.length;
  let sequenceNumber = dtls.sequenceNumber;
  let firstSet = true;
  Object.defineProperty(dtls, 'sequenceNumber', {
    configurable: true,
    enumerable: true,
    get: () => sequenceNumber,
    set: (value: number) => {
      sequenceNumber = firstSet && value === 1 ? 0 : value;
      firstSet = false;
    },
  });
  const flight4 = handle([cookied]);
  Object.defineProperty(dtls, 'sequenceNumber', {
    configurable: true,
    enumerable: true,
    writable: true,
    value: sequenceNumber,
  });
  // The transcript holds the ClientHello the client sent and hashed.
  for (const cache of Object.values(dtls.handshakeCache)) {
    cache.data = cache.data.map((handshake) => (handshake === cookied ? hello : handshake));
  }
  return Promise.all([flight2, flight4]).then(() => undefined);
}

type Send = (datagram: Buffer, address?: never) => Promise<void>;

/**
 * A send that holds the records given to it in one synchronous run (werift's Flight sends a flight's
 * records in a loop) and sends them as few datagrams as fit `maxDatagramBytes`, in order.
 */
export function coalescing(send: Send): Send {
  let queued: Array<{ record: Buffer; done: () => void; failed: (error: unknown) => void }> = [];
  const flush = () => {
    const batch = queued;
    queued = [];
    let datagram: typeof batch = [];
    let bytes = 0;
    const out = () => {
      if (datagram.length === 0) return;
      const parts = datagram;
      // In a microtask of its own: a send that throws fails these records, never the process.
      Promise.resolve(Buffer.concat(parts.map((part) => part.record)))
        .then((joined) => send(joined))
        .then(
          () => {
            for (const part of parts) part.done();
          },
          (error: unknown) => {
            for (const part of parts) part.failed(error);
          },
        );
      datagram = [];
      bytes = 0;
    };
    for (const part of batch) {
      if (bytes + part.record.length > maxDatagramBytes) out();
      datagram.push(part);
      bytes += part.record.length;
    }
    out();
  };
  return (record) =>
    new Promise<void>((done, failed) => {
      if (queued.length === 0) queueMicrotask(flush);
      queued.push({ record, done, failed });
    });
}

function resendLastFlight(server: DtlsServer): Promise<void> {
  return Promise.all(server.dtls.lastMessage.map((datagram) => server.transport.send(datagram))).then(
    () => undefined,
  );
}

let installed = false;

/** Installs the changes (see the top of this file) on werift's DtlsServer; idempotent. */
export function tuneDtlsServer(): void {
  if (installed) return;
  installed = true;
  wrapHandshakeHandler(DtlsServer.prototype, wrap);
}

function wrap(server: DtlsServer, handle: Handler): Handler {
  const transport = server.transport;
  Object.assign(transport, { send: coalescing(transport.send.bind(transport) as Send) });
  return (assembled: Handshake[]) => {
    const forged = assembled.find(
      (handshake) => handshake.msg_type === certificateVerify && !certificateVerifies(server, handshake),
    );
    // werift fails the transport with this (RTCDtlsTransport 'failed'), and logs it.
    if (forged) return Promise.reject(new Error("the client's CertificateVerify does not verify"));
    const hello = assembled.find((handshake) => handshake.msg_type === clientHello);
    if (hello === undefined || !isCookielessHello(hello) || server.connected) return handle(assembled);
    const others = assembled.filter((handshake) => handshake !== hello);
    const answeredHello = answered.get(server.dtls);
    const first = answeredHello
      ? answeredHello.equals(hello.fragment)
        ? resendLastFlight(server)
        : Promise.resolve()
      : server.dtls.flight === 0
        ? answerAtOnce(server, handle, hello)
        : handle([hello]);
    return others.length === 0 ? first : Promise.all([first, handle(others)]).then(() => undefined);
  };
}
