// A fresh media process pays werift's first-use costs: its per-process DTLS certificate, and cold
// JavaScript for SDP, the DTLS handshake (werift's key exchange is pure JavaScript: X25519 from
// tweetnacl, P-256 from @noble/curves, which builds its tables on first use) and SRTP. In a new process
// a look's handshake took about 45 ms longer than in one that had done a handshake before. `warmUp` pays
// those costs while the stand-by process waits for a look: one throw-away offer, and DTLS handshakes
// followed by SRTP between two endpoints in this process that pass their records to each other in
// memory. No socket is opened for it, nothing leaves the process, and no camera is involved.
import {
  DtlsClient,
  DtlsServer,
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RTCDtlsTransport,
  RTCPeerConnection,
  RtpHeader,
  SrtcpSession,
  SrtpSession,
} from 'werift';
import { h264Codec, installDtlsChanges, withoutDefaultStun } from '../video/index.js';

type DtlsOptions = ConstructorParameters<typeof DtlsServer>[0];
type Transport = DtlsOptions['transport'];
type Certificate = Awaited<ReturnType<typeof RTCDtlsTransport.SetupCertificate>>;

/** The SRTP profiles werift's peer connection offers, in its order. */
const srtpProfiles = [ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80];
/**
 * Handshakes to warm up with: after one, a further one took no less time (12 ms against 54 ms cold). A
 * look that comes while the process warms up waits for it, so no more than that.
 */
export const warmUpHandshakes = 1;
/** A handshake between two endpoints in one process that has not ended by then failed. */
const handshakeTimeoutMs = 2000;

/** Sees every datagram of an in-memory handshake, and drops it by returning false (tests). */
export type DatagramTap = (from: 'server' | 'client', datagram: Buffer) => boolean | undefined;

/** Two DTLS transports joined in memory: what one sends, the other receives on a later turn. */
function memoryPair(tap?: DatagramTap): [Transport, Transport] {
  const end = (): Transport => ({
    type: 'memory',
    address: {} as Transport['address'],
    closed: false,
    onData: () => undefined,
    send: async () => undefined,
    close: async () => undefined,
  });
  const a = end();
  const b = end();
  a.send = async (data) => {
    const copy = Buffer.from(data);
    if (tap?.('server', copy) === false) return;
    setImmediate(() => b.onData(copy, {} as never));
  };
  b.send = async (data) => {
    const copy = Buffer.from(data);
    if (tap?.('client', copy) === false) return;
    setImmediate(() => a.onData(copy, {} as never));
  };
  return [a, b];
}

/** SRTP and SRTCP both ways with the keys of a connected pair, as RTCDtlsTransport sets them up. */
function exerciseSrtp(server: DtlsServer, client: DtlsClient): void {
  const profile = server.srtp.srtpProfile;
  if (profile === undefined) throw new Error('no SRTP profile negotiated');
  const gcm = profile === ProtectionProfileAeadAes128Gcm;
  const sessions = [server, client].map((side) => {
    const keys = side.extractSessionKeys(16, gcm ? 12 : 14);
    const config = {
      profile,
      keys: {
        localMasterKey: keys.localKey,
        localMasterSalt: keys.localSalt,
        remoteMasterKey: keys.remoteKey,
        remoteMasterSalt: keys.remoteSalt,
      },
    };
    return { srtp: new SrtpSession(config), srtcp: new SrtcpSession(config) };
  });
  const [sender, receiver] = sessions as [(typeof sessions)[0], (typeof sessions)[0]];
  const payload = Buffer.alloc(1200, 0x5a);
  for (let sequenceNumber = 1; sequenceNumber <= 8; sequenceNumber++) {
    const header = new RtpHeader({
      payloadType: 96,
      sequenceNumber,
      timestamp: sequenceNumber * 6000,
      ssrc: 1,
    });
    const packet = sender.srtp.encrypt(payload, header);
    if (!receiver.srtp.decrypt(packet).subarray(-payload.length).equals(payload)) {
      throw new Error('SRTP round trip changed the payload');
    }
  }
}

/** One DTLS handshake (this process as server and as client), then SRTP with its keys; its time in ms. */
export async function memoryHandshake(certificate: Certificate, tap?: DatagramTap): Promise<number> {
  const startedMs = performance.now();
  const [serverEnd, clientEnd] = memoryPair(tap);
  const options = {
    cert: certificate.certPem,
    key: certificate.privateKey,
    signatureHash: certificate.signatureHash,
    srtpProfiles,
    extendedMasterSecret: true,
  };
  const server = new DtlsServer({ ...options, transport: serverEnd, certificateRequest: true });
  const client = new DtlsClient({ ...options, transport: clientEnd });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const connected = (side: DtlsServer | DtlsClient) =>
      new Promise<void>((resolve) => side.onConnect.subscribe(() => resolve()));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('in-memory DTLS handshake timed out')), handshakeTimeoutMs);
    });
    const both = Promise.all([connected(server), connected(client)]);
    void client.connect().catch(() => undefined);
    await Promise.race([both, timeout]);
    exerciseSrtp(server, client);
    return performance.now() - startedMs;
  } finally {
    clearTimeout(timer);
    server.close();
    client.close();
  }
}

/** Pays werift's first-use costs (see the top of this file); the time taken, in ms. */
export async function warmUp(handshakes = warmUpHandshakes): Promise<number> {
  const startedMs = performance.now();
  const pc = new RTCPeerConnection({
    codecs: { video: [h264Codec(96)] },
    iceServers: [],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceUseIpv6: false,
  });
  pc.addTransceiver('video', { direction: 'sendonly' });
  withoutDefaultStun(pc, []);
  await pc.setLocalDescription(await pc.createOffer());
  await pc.close();
  // The same DTLS code a look runs (peer.ts installs it too).
  installDtlsChanges();
  const certificate = await RTCDtlsTransport.SetupCertificate();
  for (let round = 0; round < handshakes; round++) await memoryHandshake(certificate);
  return performance.now() - startedMs;
}
