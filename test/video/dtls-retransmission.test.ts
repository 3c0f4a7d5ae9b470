// werift's DTLS server with the device's repair (dtls-retransmission.ts): a handshake still completes
// when a packet of the client's flight 5 is lost and the client sends the flight again. Real werift
// client and server over an in-memory datagram pipe that drops chosen packets; the oracle is that both
// sides connect and application data sent by the client arrives at the server (decrypted with the keys
// both derived), not the repair's own bookkeeping.

import { describe, expect, it } from 'vitest';
import { DtlsClient, DtlsServer } from 'werift';
import { flight5InOrder, repairDtlsRetransmissions } from '../../device/video/index.js';
import { createConsoleIdentity } from '../../scripts/devstack/console-identity.js';

/** One end of the pipe, in the shape werift's DTLS sockets take as `transport`. */
class End {
  onData: (data: Buffer) => void = () => undefined;
  /** Datagrams for which this returns true arrive twice (a reply to a retransmitted request). */
  twice: (data: Buffer) => boolean = () => false;
  closed = false;
  readonly type = 'memory';
  readonly address = {};
  peer: End | undefined;
  constructor(readonly drop: (data: Buffer) => boolean) {}
  send = async (data: Buffer): Promise<void> => {
    if (this.closed || this.drop(data)) return;
    const peer = this.peer;
    setImmediate(() => peer?.onData(data));
    if (this.twice(data)) setImmediate(() => peer?.onData(data));
  };
  close(): void {
    this.closed = true;
  }
}

const handshakeRecord = 22;
/** The handshake message type of a datagram holding one handshake record, or 'encrypted' (epoch > 0). */
function handshakeType(datagram: Buffer): number | 'encrypted' | undefined {
  if (datagram[0] !== handshakeRecord) return undefined;
  if (datagram.readUInt16BE(3) > 0) return 'encrypted';
  return datagram[13];
}

/** Drops the first datagram that `matches`, and only that one. */
function dropFirst(matches: (datagram: Buffer) => boolean): (datagram: Buffer) => boolean {
  let dropped = false;
  return (datagram) => {
    if (dropped || !matches(datagram)) return false;
    dropped = true;
    return true;
  };
}

async function handshake(
  dropClientToServer: (datagram: Buffer) => boolean,
  twiceServerToClient: (datagram: Buffer) => boolean = () => false,
) {
  repairDtlsRetransmissions();
  const [serverId, clientId] = await Promise.all([createConsoleIdentity(), createConsoleIdentity()]);
  const toServer = new End(dropClientToServer);
  const toClient = new End(() => false);
  toClient.twice = twiceServerToClient;
  toServer.peer = toClient;
  toClient.peer = toServer;
  // The client's end sends to the server, and receives what the server's end sends.
  const serverTransport = toClient;
  const clientTransport = toServer;
  const certificate = (id: typeof serverId) => ({
    cert: id.certificate.certPem,
    key: id.certificate.privateKey,
    signatureHash: id.certificate.signatureHash,
  });
  const server = new DtlsServer({
    ...certificate(serverId),
    transport: serverTransport as never,
    srtpProfiles: [1],
    extendedMasterSecret: true,
    certificateRequest: true,
  });
  const client = new DtlsClient({
    ...certificate(clientId),
    transport: clientTransport as never,
    srtpProfiles: [1],
    extendedMasterSecret: true,
  });
  const received: string[] = [];
  server.onData.subscribe((data) => received.push(data.toString('utf8')));
  // werift's RTCDtlsTransport fails the connection on the first error either side reports.
  const errors: string[] = [];
  for (const socket of [server, client]) socket.onError.subscribe((error) => errors.push(String(error)));
  const connected = (socket: DtlsServer | DtlsClient) =>
    new Promise<void>((resolve) => socket.onConnect.once(() => resolve()));
  const bothConnected = Promise.all([connected(server), connected(client)]);
  await client.connect();
  // werift retransmits a flight after 0.5, 1, 1.5 ... s: a few retransmissions fit well within this.
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000));
  const outcome = await Promise.race([bothConnected.then(() => 'connected' as const), timeout]);
  if (outcome === 'connected') {
    await client.send(Buffer.from('hello through the handshake', 'utf8'));
    for (let i = 0; i < 100 && received.length === 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  for (const end of [toServer, toClient]) end.close();
  return { outcome, received, errors };
}

describe('DTLS handshake with werift repaired, packets lost or twice', () => {
  it.each([
    ['the Finished', (datagram: Buffer) => handshakeType(datagram) === 'encrypted'],
    ['the ClientKeyExchange', (datagram: Buffer) => handshakeType(datagram) === 16],
    ['the Certificate', (datagram: Buffer) => handshakeType(datagram) === 11],
    ['the CertificateVerify', (datagram: Buffer) => handshakeType(datagram) === 15],
  ])(
    'completes when the first copy of %s is lost',
    async (_name, matches) => {
      const { outcome, received } = await handshake(dropFirst(matches));
      expect(outcome).toBe('connected');
      expect(received).toEqual(['hello through the handshake']);
    },
    20_000,
  );

  it('completes when the HelloVerifyRequest arrives twice (werift client)', async () => {
    const { outcome, received, errors } = await handshake(
      () => false,
      (datagram) => handshakeType(datagram) === 3,
    );
    expect(errors).toEqual([]);
    expect(outcome).toBe('connected');
    expect(received).toEqual(['hello through the handshake']);
  }, 20_000);

  it('completes with no loss', async () => {
    const { outcome, received, errors } = await handshake(() => false);
    expect(errors).toEqual([]);
    expect(outcome).toBe('connected');
    expect(received).toEqual(['hello through the handshake']);
  }, 20_000);
});

describe('flight5InOrder', () => {
  const message = (msg_type: number) => ({ msg_type }) as Parameters<typeof flight5InOrder>[0][number];
  const types = (taken: number[], incoming: number[], certificateRequest = true) =>
    flight5InOrder(incoming.map(message), new Set(taken), certificateRequest).map((h) => h.msg_type);

  it('takes the flight in order, each message once', () => {
    expect(types([], [11])).toEqual([11]);
    expect(types([11], [16])).toEqual([16]);
    expect(types([11, 16], [15])).toEqual([15]);
    expect(types([11, 16, 15], [20])).toEqual([20]);
  });

  it('drops a copy of a message already taken, but never a Finished once the rest is in', () => {
    expect(types([11, 16, 15], [11])).toEqual([]);
    expect(types([11, 16, 15], [16])).toEqual([]);
    expect(types([11, 16, 15], [15])).toEqual([]);
    expect(types([11, 16, 15, 20], [20])).toEqual([20]);
  });

  it('drops a message whose predecessors are missing (the client sends the flight again)', () => {
    expect(types([], [16])).toEqual([]);
    expect(types([11], [15])).toEqual([]);
    expect(types([11, 16], [20])).toEqual([]);
    expect(types([], [16], false)).toEqual([16]);
    expect(types([16], [20], false)).toEqual([20]);
  });

  it('takes the fragments of one message together, and leaves other handshake messages alone', () => {
    expect(types([], [11, 11, 11])).toEqual([11, 11, 11]);
    expect(types([11, 16, 15, 20], [1])).toEqual([1]);
  });
});
