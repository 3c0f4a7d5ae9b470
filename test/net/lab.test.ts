// Looks across real networks, in a lab of network namespaces this test builds (scripts/netlab/lab.ts):
// the device behind a symmetric NAT on an emulated 4G or bad uplink, the console behind another NAT, and
// between them a public network with coturn and mosquitto that forwards nothing from one NAT to the
// other. The device service and its media process run inside the device's namespace, the werift console
// inside the console's; a look can work only through the relay. Root is required: without it this file
// fails (CI runs as root), it never skips.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IceServer } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { DeviceProcess } from '../../scripts/devstack/device-process.js';
import type { PeerIce } from '../../scripts/devstack/mqtt-console.js';
import { testPki } from '../../scripts/devstack/pki.js';
import { ConsoleProcess } from '../../scripts/netlab/console-process.js';
import { type Coturn, startCoturn } from '../../scripts/netlab/coturn.js';
import {
  createLab,
  type Lab,
  labAddresses,
  ownLabNamespaces,
  removeStaleLabs,
} from '../../scripts/netlab/lab.js';
import { EmulatedLink } from '../../scripts/netlab/link.js';
import { clearLink, type LinkProfile, link4g, linkBad } from '../../scripts/netlab/link-profile.js';

const deviceId = 'kam-demo';
const secret = randomBytes(24).toString('base64');
const lookTimeoutMs = 30_000;

let lab: Lab | undefined;
let link: EmulatedLink | undefined;
let coturn: Coturn | undefined;
let broker: Broker | undefined;
let device: DeviceProcess | undefined;
let viewer: ConsoleProcess | undefined;

/** The `ice` claim of a grant, as the console reads it to use the same relay. */
function iceOf(grant: string): IceServer[] {
  const payload = JSON.parse(Buffer.from(grant.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
    ice?: IceServer[];
  };
  return payload.ice ?? [];
}

const relayOnly = (grant: string): PeerIce => ({
  iceServers: iceOf(grant).map(({ urls, username, credential }) => ({
    urls,
    ...(username === undefined ? {} : { username }),
    ...(credential === undefined ? {} : { credential }),
  })),
  iceTransportPolicy: 'relay',
  iceUseIpv6: false,
});

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the network lab needs root (ip netns); CI runs as root');
  await removeStaleLabs();
  lab = await createLab({ symmetricDeviceNat: true });
  link = await EmulatedLink.start(lab);
  coturn = await startCoturn(lab, secret);
  const pki = await testPki();
  broker = await startBroker({ pki, netns: { name: lab.ns('pub'), host: labAddresses.services } });
  const [deviceCert, centralCert, consoleCert] = await Promise.all([
    pki.clientCert(deviceId),
    pki.clientCert('central'),
    pki.clientCert('console-1'),
  ]);
  const labRef = lab;
  device = await DeviceProcess.startWith(
    {
      brokerUrl: broker.url,
      camera: { width: 640, height: 360, fps: 15 },
      tls: { caFile: pki.caCert, device: deviceCert, central: centralCert },
      turn: { secret, urls: [coturn.url] },
      // LAB_LOG=debug shows the device's log (for finding out why a look took long).
      ...(process.env.LAB_LOG ? { logLevel: process.env.LAB_LOG } : {}),
    },
    (module, args) => labRef.fork('dev', module, args),
  );
  viewer = await ConsoleProcess.start(
    lab.fork('con', ConsoleProcess.entry, [
      JSON.stringify({
        brokerUrl: broker.url,
        caFile: pki.caCert,
        certFile: consoleCert.cert,
        keyFile: consoleCert.key,
        deviceId,
      }),
    ]),
  );
  await device.request('schedule');
}, 120_000);

afterAll(async () => {
  const steps = [
    () => viewer?.close(),
    () => device?.stop(),
    () => broker?.stop(),
    () => coturn?.stop(),
    () => link?.stop(),
    () => lab?.remove(),
  ];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      console.error('lab teardown step failed:', error);
    }
  }
  expect(ownLabNamespaces()).toEqual([]);
}, 60_000);

/**
 * LED off, no look, and in the device's namespace nothing but the service and its stand-by media process:
 * the look's media process (werift with its TURN refresh timer, werift#685, and any socket of a failed
 * allocation, #687) and its ffmpeg were killed with their process group.
 */
async function expectNothingLeftOfTheLook(): Promise<void> {
  if (!device || !lab) throw new Error('lab not up');
  const state = await device.request('view-state');
  expect(state).toEqual({ ledOn: false, activeSessionId: undefined, mediaSessions: [] });
  const { warmPid } = await device.request('media-pids');
  const allowed = new Set([device.pid, warmPid]);
  expect((await lab.pids('dev')).filter((pid) => !allowed.has(pid))).toEqual([]);
}

async function lookThroughRelay(profile: LinkProfile) {
  if (!link || !device || !viewer || !coturn) throw new Error('lab not up');
  await link.setProfile(profile);
  const grant = await device.request('grant', await viewer.holder());
  const decision = await viewer.look(grant, relayOnly(grant));
  expect(decision).toMatchObject({ decision: 'granted' });
  const report = await viewer.frames(20, 1, lookTimeoutMs);
  const ttffMs = (report.timings.firstFrameAtMs ?? Number.NaN) - report.timings.requestedAtMs;
  const t = report.timings;
  const since = (at: number | undefined) => (at === undefined ? '-' : Math.round(at - t.requestedAtMs));
  console.info(
    `[lab] ${profile.name}: request → first frame through TURN ${Math.round(ttffMs)} ms (decision ${since(t.decisionAtMs)}, offer ${since(t.offerAtMs)}, answer ${since(t.answerSentAtMs)}, ice ${since(t.iceConnectedAtMs)}, dtls ${since(t.connectedAtMs)})`,
  );
  return { grant, decision, report };
}

describe('a look across NATs, only through the TURN relay', () => {
  it.each(process.env.LAB_ONLY_4G ? [link4g] : [link4g, linkBad])(
    'a werift console behind its NAT gets keyframe-first video from a device behind a symmetric NAT ($name link)',
    async (profile) => {
      const { decision, report } = await lookThroughRelay(profile);
      expect(report.firstFrameIsKeyframe).toBe(true);
      expect(report.keyframes).toBeGreaterThanOrEqual(1);
      // The console's own side of the pair is its relay; coturn saw the look's username (expiry:sid).
      expect(report.selected?.local).toBe('relay');
      expect(coturn?.logs()).toContain(`:${decision.sessionId}`);
      await viewer?.hangup();
      const { ended } = await viewer!.ended(15_000);
      expect(ended).toMatchObject({ reason: 'operator-hangup', endedBy: 'grant-holder' });
      await expectNothingLeftOfTheLook();
      await link?.setProfile(clearLink);
    },
    90_000,
  );
});
