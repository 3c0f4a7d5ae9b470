// The whole look lab, as the lab test and the TURN bench start it: namespaces and NATs (lab.ts), the
// emulated device uplink (link.ts), coturn and mosquitto in the public namespace, the device service in
// the device's namespace (look-device.ts with a TLS broker and per-look TURN credentials) and a werift
// console in the console's. `stop()` takes it all down in reverse, each step on its own; so does a
// failed start.
import { randomBytes } from 'node:crypto';
import type { IceServer } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../devstack/broker.js';
import { DeviceProcess } from '../devstack/device-process.js';
import type { PeerIce } from '../devstack/mqtt-console.js';
import { testPki } from '../devstack/pki.js';
import { ConsoleProcess } from './console-process.js';
import { type Coturn, startCoturn } from './coturn.js';
import { createLab, type Lab, labAddresses, removeStaleLabs } from './lab.js';
import { EmulatedLink } from './link.js';

export const labDeviceId = 'kam-demo';

export interface LookLab {
  lab: Lab;
  link: EmulatedLink;
  coturn: Coturn;
  broker: Broker;
  device: DeviceProcess;
  viewer: ConsoleProcess;
  stop(): Promise<void>;
}

/** The `ice` claim of a grant, as a console reads it to use the same relay, with relay only. */
export function relayOnly(grant: string): PeerIce {
  const payload = JSON.parse(Buffer.from(grant.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
    ice?: IceServer[];
  };
  return {
    iceServers: (payload.ice ?? []).map(({ urls, username, credential }) => ({
      urls,
      ...(username === undefined ? {} : { username }),
      ...(credential === undefined ? {} : { credential }),
    })),
    iceTransportPolicy: 'relay',
    iceUseIpv6: false,
  };
}

export async function startLookLab(
  options: {
    logLevel?: string | undefined;
    camera?: { width: number; height: number; fps: number };
    /** The emulated link's losses (EmulatedLink.start); default 0, as in CI. */
    lossSeed?: number | undefined;
  } = {},
): Promise<LookLab> {
  if (process.getuid?.() !== 0) throw new Error('the network lab needs root (ip netns); CI runs as root');
  await removeStaleLabs();
  const secret = randomBytes(24).toString('base64');
  const parts: Partial<LookLab> = {};
  const stop = async () => {
    const steps = [
      () => parts.viewer?.close(),
      () => parts.device?.stop(),
      () => parts.broker?.stop(),
      () => parts.coturn?.stop(),
      () => parts.link?.stop(),
      () => parts.lab?.remove(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        console.error('lab: stop step failed:', error);
      }
    }
  };
  try {
    const lab = await createLab({ symmetricDeviceNat: true });
    parts.lab = lab;
    parts.link = await EmulatedLink.start(lab, options.lossSeed);
    const pki = await testPki();
    const coturn = await startCoturn(lab, secret, pki.server);
    parts.coturn = coturn;
    const broker = await startBroker({
      pki,
      websockets: true,
      netns: { name: lab.ns('pub'), host: labAddresses.services },
    });
    parts.broker = broker;
    const [deviceCert, centralCert, consoleCert] = await Promise.all([
      pki.clientCert(labDeviceId),
      pki.clientCert('central'),
      pki.clientCert('console-1'),
    ]);
    const device = await DeviceProcess.startWith(
      {
        brokerUrl: broker.url,
        camera: options.camera ?? { width: 640, height: 360, fps: 15 },
        tls: { caFile: pki.caCert, device: deviceCert, central: centralCert },
        // The grant's ice claim as in production: UDP for the device, TLS on 443 for the consoles.
        turn: { secret, urls: [coturn.url, coturn.tlsUrl] },
        // A short backoff cap, so that a reconnect after an outage comes within seconds.
        config: { broker: { reconnect: { initialMs: 500, maxMs: 3000 } } },
        ...(options.logLevel ? { logLevel: options.logLevel } : {}),
      },
      (module, args) => lab.fork('dev', module, args),
    );
    parts.device = device;
    parts.viewer = await ConsoleProcess.start(
      lab.fork('con', ConsoleProcess.entry, [
        JSON.stringify({
          brokerUrl: broker.url,
          caFile: pki.caCert,
          certFile: consoleCert.cert,
          keyFile: consoleCert.key,
          deviceId: labDeviceId,
        }),
      ]),
    );
    await device.request('schedule');
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...(parts as Omit<LookLab, 'stop'>), stop };
}
