// The fleet page as scripts/demo starts it: the demo's plain loopback listener, as `ops`.
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetForDemo } from '../../fleet/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { announce, connectDevice, healthPayload, until } from './support/devices.js';

let broker: Broker;
let device: MqttClient;

beforeAll(async () => {
  broker = await startBroker({ plain: true });
  device = await connectDevice('kam-0201', broker.plainOptions('kam-0201'));
  await announce(
    device,
    'kam-0201',
    healthPayload({ nextWindowAt: new Date(Date.now() + 3600_000).toISOString() }),
  );
});

afterAll(async () => {
  await device?.endAsync(true);
  await broker?.stop();
});

describe('startFleetForDemo', () => {
  it('serves the page for the demo broker, prints its address, and stops cleanly', async () => {
    const lines: string[] = [];
    const demo = await startFleetForDemo({
      brokerUrl: broker.plainUrl!,
      mqtt: broker.plainOptions('ops'),
      log: pino({ level: 'silent' }),
      print: (line) => lines.push(line),
    });
    try {
      expect(lines.join('\n')).toContain(demo.url);
      const page = await fetch(demo.url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('At risk');
      await until('device', async () => {
        const fleet = (await (await fetch(new URL('api/fleet', demo.url))).json()) as {
          devices: { device: string }[];
        };
        return fleet.devices.some((row) => row.device === 'kam-0201');
      });
    } finally {
      expect(await demo.stop()).toBe(0);
      expect(await demo.stop()).toBe(0);
    }
  });
});
