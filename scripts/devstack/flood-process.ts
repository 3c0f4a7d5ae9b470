// A flooder in a process of its own (forked by scripts/bench/flood.ts), so that its TLS and publishing
// do not share the event loop with the device it floods. Told over IPC what to send; answers `stop`
// with its figures.
import mqtt, { type IClientOptions } from 'mqtt';
import { refusedRequests, startFlood } from './flood.js';

interface Start {
  options: Omit<IClientOptions, 'ca' | 'cert' | 'key'> & { ca: string; cert: string; key: string };
  deviceId: string;
  nowMs: number;
  perS: number;
  /** See startFlood; default 1 s. */
  catchUpS?: number;
}

process.once('message', async (start: Start) => {
  const client = await mqtt.connectAsync(start.options);
  const flood = startFlood(
    client,
    start.deviceId,
    await refusedRequests(start.deviceId, start.nowMs),
    start.perS,
    start.catchUpS,
  );
  process.send?.({ started: true });
  process.once('message', async () => {
    const figures = await flood.stop();
    await client.endAsync();
    process.send?.(figures, () => process.exit(0));
  });
});
