// What one MQTT reconnect costs on the wire, with and without TLS session resumption: the device's link
// to a real mosquitto (TLS, client certificates) through a loopback proxy that counts every byte and
// cuts the connection, as a 4G drop does. A reconnect here is the TLS handshake, CONNECT/CONNACK, the
// retained online status and the subscriptions (the service also re-sends info and health: see
// bytes-per-day.ts). TCP/IP headers are not counted.
//
//   npx tsx scripts/bench/mqtt-reconnect.ts
import { setTimeout as delay } from 'node:timers/promises';
import { silentLogger } from '../../device/log/index.js';
import { MqttLink, memoryCounter } from '../../device/mqtt/index.js';
import { startBroker } from '../devstack/broker.js';
import { startCountingProxy } from '../devstack/counting-proxy.js';

const reconnects = 5;

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (const deadline = performance.now() + 15_000; !check(); await delay(10)) {
    if (performance.now() > deadline) throw new Error(`${what} within 15 s`);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  const broker = await startBroker();
  const proxy = await startCountingProxy({ host: '127.0.0.1', port: broker.port });
  try {
    const options = await broker.clientOptions('kam-bench');
    for (const tlsResumption of [false, true]) {
      const link = new MqttLink({
        deviceId: 'kam-bench',
        url: `mqtts://127.0.0.1:${proxy.port}`,
        tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
        keepaliveS: 30,
        log: silentLogger(),
        counter: memoryCounter(),
        tlsResumption,
      });
      const first = proxy.connections.length;
      link.start();
      const sizes: Array<{ up: number; down: number }> = [];
      for (let i = 0; i <= reconnects; i += 1) {
        await waitFor(() => link.connected && proxy.connections.length > first + i, 'connected');
        await delay(300);
        sizes.push({ ...proxy.connections[first + i]! });
        if (i < reconnects) {
          proxy.cut();
          await waitFor(() => !link.connected, 'drop noticed');
        }
      }
      await link.stop();
      const again = sizes.slice(1);
      console.log(
        `TLS resumption ${tlsResumption ? 'on ' : 'off'}: first connection ${sizes[0]!.up + sizes[0]!.down} B; ` +
          `per reconnect (median of ${reconnects}) ${median(again.map((s) => s.up + s.down))} B ` +
          `(up ${median(again.map((s) => s.up))}, down ${median(again.map((s) => s.down))}); resumed ${link.tlsSessionsResumed}/${reconnects}`,
      );
    }
  } finally {
    await proxy.close();
    await broker.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
