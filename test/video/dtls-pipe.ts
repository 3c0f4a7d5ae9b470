// A werift DTLS client and server joined in memory by a pipe that can drop, duplicate, delay and
// reorder each datagram, and that takes datagrams injected at the server (another party's). The
// outcome's oracle is that both ends connect and derive the same SRTP keys.
import { DtlsClient, DtlsServer, ProtectionProfileAes128CmHmacSha1_80, type RTCDtlsTransport } from 'werift';
import { createConsoleIdentity } from '../../scripts/devstack/console-identity.js';

type Certificate = Awaited<ReturnType<typeof RTCDtlsTransport.SetupCertificate>>;
export type From = 'server' | 'client';
/** The delays (ms) of each copy of a datagram that `from` sends; [] drops it. */
export type Network = (from: From, datagram: Buffer) => number[];

export interface Pipe {
  server: DtlsServer;
  client: DtlsClient;
  /** Every datagram each end sent, in order (dropped ones too). */
  sent: Array<{ from: From; datagram: Buffer }>;
  injectAtServer: (datagram: Buffer) => void;
  /** 'connected' (same keys both ends), 'keys differ', an error, or 'timeout'. */
  outcome: Promise<string>;
  close: () => void;
}

/** A certificate and the key an endpoint signs with (an impostor's is not the certificate's own). */
interface Identity {
  certificate: Certificate;
  signingKey: string;
}

/** DTLS endpoint options for `who`; none (the shared certificate) when undefined. */
const identity = (who: Identity | undefined) =>
  who && { cert: who.certificate.certPem, key: who.signingKey, signatureHash: who.certificate.signatureHash };

export function dtlsPipe(
  certificate: Certificate,
  network: Network,
  options: {
    timeoutMs: number;
    beforeConnect?: (pipe: Pipe) => void;
    /** The client's certificate and the key it signs with (default: `certificate`, its own key). */
    client?: Identity;
    /** The server's, likewise. */
    server?: Identity;
  },
): Pipe {
  const sent: Pipe['sent'] = [];
  const end = (from: From) => ({
    type: 'memory',
    address: {},
    closed: false,
    onData: (_: Buffer): void => undefined,
    send: async (data: Buffer) => {
      const copy = Buffer.from(data);
      sent.push({ from, datagram: copy });
      for (const delayMs of network(from, copy)) {
        setTimeout(() => (from === 'server' ? clientEnd : serverEnd).onData(copy), delayMs);
      }
    },
    close: async () => undefined,
  });
  const serverEnd = end('server');
  const clientEnd = end('client');
  const common = {
    cert: certificate.certPem,
    key: certificate.privateKey,
    signatureHash: certificate.signatureHash,
    srtpProfiles: [ProtectionProfileAes128CmHmacSha1_80],
    extendedMasterSecret: true,
  };
  const server = new DtlsServer({
    ...common,
    ...identity(options.server),
    transport: serverEnd as never,
    certificateRequest: true,
  });
  const client = new DtlsClient({
    ...common,
    ...identity(options.client),
    transport: clientEnd as never,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = new Promise<string>((resolve) => {
    let connected = 0;
    const onConnect = () => {
      if (++connected < 2) return;
      const s = server.extractSessionKeys(16, 14);
      const c = client.extractSessionKeys(16, 14);
      resolve(s.localKey.equals(c.remoteKey) && s.remoteKey.equals(c.localKey) ? 'connected' : 'keys differ');
    };
    server.onConnect.subscribe(onConnect);
    client.onConnect.subscribe(onConnect);
    server.onError.subscribe((error) => resolve(`server error: ${String(error)}`));
    client.onError.subscribe((error) => resolve(`client error: ${String(error)}`));
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  }).finally(() => clearTimeout(timer));
  const pipe: Pipe = {
    server,
    client,
    sent,
    injectAtServer: (datagram) => serverEnd.onData(datagram),
    outcome,
    close: () => {
      server.close();
      client.close();
    },
  };
  options.beforeConnect?.(pipe);
  void client.connect().catch(() => undefined);
  return pipe;
}

/**
 * Two handshakes between fresh identities in which `side` sends the console's certificate: signing with
 * the console's key, then with an impostor's. The outcome of each.
 */
export async function impostorOutcomes(side: 'client' | 'server'): Promise<string[]> {
  const [device, console, impostor] = await Promise.all([
    createConsoleIdentity(),
    createConsoleIdentity(),
    createConsoleIdentity(),
  ]);
  const outcomes: string[] = [];
  for (const signer of [console, impostor]) {
    const pipe = dtlsPipe(device.certificate, () => [0], {
      timeoutMs: 3000,
      [side]: { certificate: console.certificate, signingKey: signer.certificate.privateKey },
    });
    outcomes.push(await pipe.outcome);
    pipe.close();
  }
  return outcomes;
}

/** [msg_type, message_seq] of each plaintext (epoch 0) handshake record in a datagram. */
export function handshakes(datagram: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 13 <= datagram.length; at += 13 + datagram.readUInt16BE(at + 11)) {
    if (datagram[at] === 22 && datagram.readUInt16BE(at + 3) === 0) {
      out.push([datagram[at + 13]!, datagram.readUInt16BE(at + 17)]);
    }
  }
  return out;
}

/** A datagram of one plaintext handshake record as `parts` records, each a fragment of the message. */
export function fragmented(datagram: Buffer, parts: number): Buffer[] {
  const message = datagram.subarray(13);
  const length = message.readUIntBE(1, 3);
  const body = message.subarray(12, 12 + length);
  const size = Math.ceil(length / parts);
  const records: Buffer[] = [];
  for (let offset = 0; offset < length; offset += size) {
    const piece = body.subarray(offset, offset + size);
    const header = Buffer.from(message.subarray(0, 12));
    header.writeUIntBE(offset, 6, 3);
    header.writeUIntBE(piece.length, 9, 3);
    const record = Buffer.from(datagram.subarray(0, 13));
    record.writeUIntBE(datagram.readUIntBE(5, 6) + records.length, 5, 6);
    record.writeUInt16BE(12 + piece.length, 11);
    records.push(Buffer.concat([record, header, piece]));
  }
  return records;
}
