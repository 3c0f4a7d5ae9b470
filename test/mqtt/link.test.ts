// The link's own rules: backoff with jitter, the bounded offline queue for QoS 0 telemetry (the
// oldest is dropped and counted; what is kept is sent after connect), and a clean stop that says
// `offline` once (DISCONNECT, so no will), against a real mosquitto.
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { backoffMs, MqttLink, memoryCounter } from '../../device/mqtt/index.js';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';

describe('backoffMs', () => {
  const options = { initialMs: 500, maxMs: 30_000 };
  it('doubles from the initial delay up to the cap, half of it random', () => {
    const low = [0, 1, 2, 3, 10].map((attempt) => backoffMs(attempt, { ...options, random: () => 0 }));
    const high = [0, 1, 2, 3, 10].map((attempt) =>
      backoffMs(attempt, { ...options, random: () => 0.999_999 }),
    );
    expect(low).toEqual([250, 500, 1000, 2000, 15_000]);
    expect(high).toEqual([500, 1000, 2000, 4000, 30_000]);
  });

  it('never overflows for huge attempt numbers', () => {
    expect(backoffMs(10_000, { ...options, random: () => 0.5 })).toBe(22_500);
  });
});

describe('MqttLink offline telemetry queue', () => {
  const deviceId = 'dev-link';
  let broker: Broker;
  let central: MqttClient;
  const seen: number[] = [];

  beforeAll(async () => {
    broker = await startBroker();
    central = await mqtt.connectAsync({ ...(await broker.clientOptions('central')), reconnectPeriod: 0 });
    central.on('message', (_topic, payload) => {
      if (payload.length > 0) seen.push((JSON.parse(payload.toString()) as { uptimeS: number }).uptimeS);
    });
    await central.subscribeAsync(topic(deviceId, 'health'), { qos: 0 });
  });

  afterAll(async () => {
    await central?.endAsync(true);
    await broker?.stop();
  });

  it('keeps the newest 20 health reports while offline, counts the dropped and sends the rest on connect', async () => {
    const options = await broker.clientOptions(deviceId);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const link = new MqttLink({
      deviceId,
      url: broker.url,
      tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
      keepaliveS: 5,
      log: silentLogger(),
      counter: memoryCounter(),
      offlineQueueMax: 20,
      connect: (url, connectOptions) => {
        const client = mqtt.connect(url, { ...connectOptions, manualConnect: true });
        void gate.then(() => client.connect());
        return client;
      },
    });
    link.start();
    for (let uptimeS = 0; uptimeS < 25; uptimeS += 1) {
      await link.publish('health', { schemaVersion, uptimeS });
    }
    await expect(link.publish('event', { schemaVersion })).rejects.toThrow('offline');
    expect(link.stats).toMatchObject({ telemetryDropped: 5, telemetryQueued: 20 });

    open();
    const deadline = performance.now() + 5000;
    while (seen.length < 20 && performance.now() < deadline) await delay(10);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 5));
    expect(link.stats.telemetryQueued).toBe(0);
    await link.stop();
    await link.stop();
  });
});

describe('MqttLink clean stop', () => {
  const deviceId = 'dev-clean-stop';
  let broker: Broker;
  let central: MqttClient;
  const statuses: Array<{ state: string; connection: number }> = [];

  beforeAll(async () => {
    broker = await startBroker();
    central = await mqtt.connectAsync({ ...(await broker.clientOptions('central')), reconnectPeriod: 0 });
    central.on('message', (_topic, payload) => {
      if (payload.length > 0) statuses.push(JSON.parse(payload.toString()) as (typeof statuses)[number]);
    });
    await central.subscribeAsync(topic(deviceId, 'status'), { qos: 1 });
  });

  afterAll(async () => {
    await central?.endAsync(true);
    await broker?.stop();
  });

  it('says offline exactly once: it disconnects properly, so the broker discards the will', async () => {
    const options = await broker.clientOptions(deviceId);
    const keepaliveS = 1;
    const link = new MqttLink({
      deviceId,
      url: broker.url,
      tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
      keepaliveS,
      log: silentLogger(),
      counter: memoryCounter(),
    });
    link.start();
    const deadline = performance.now() + 5000;
    while (!statuses.some((s) => s.state === 'online') && performance.now() < deadline) await delay(10);
    const connection = link.stats.connection;
    expect(statuses).toEqual([expect.objectContaining({ state: 'online', connection })]);

    await link.stop();
    // Past one and a half keepalive periods: a will the broker still held would have fired by now.
    await delay(keepaliveS * 1500 + 1000);
    expect(statuses.map((s) => `${s.state}:${s.connection}`)).toEqual([
      `online:${connection}`,
      `offline:${connection}`,
    ]);
    // The broker names the client by its username (use_username_as_clientid): the device id.
    expect(broker.logs()).toMatch(new RegExp(`Client (tk-)?${deviceId} disconnected\\.`));
  });
});

describe('MqttLink clean stop on a dying connection', () => {
  /** A client whose DISCONNECT never completes (its in-flight PUBACKs never come). */
  class StuckClient extends EventEmitter {
    destroyed = false;
    readonly stream = {
      destroy: (): void => {
        this.destroyed = true;
        this.emit('close');
      },
    };
    constructor() {
      super();
      setImmediate(() => this.emit('connect'));
    }
    publish(_topic: string, _payload: string, _options: object, done?: () => void): this {
      done?.();
      return this;
    }
    subscribe(_topics: object, done: (error: Error | null) => void): this {
      done(null);
      return this;
    }
    end(): this {
      return this;
    }
  }

  it('closes the socket after its bounded wait when the DISCONNECT cannot complete', async () => {
    const client = new StuckClient();
    const link = new MqttLink({
      deviceId: 'dev-stuck',
      url: 'mqtt://127.0.0.1:1',
      tls: undefined,
      keepaliveS: 5,
      log: silentLogger(),
      counter: memoryCounter(),
      disconnectTimeoutMs: 100,
      connect: () => client as unknown as MqttClient,
    });
    link.start();
    const deadline = performance.now() + 2000;
    while (!link.connected && performance.now() < deadline) await delay(5);
    expect(link.connected).toBe(true);
    // The stop is bounded by disconnectTimeoutMs (100 ms): it resolves, long before the race's 10 s.
    const outcome = await Promise.race([link.stop().then(() => 'stopped'), delay(10_000).then(() => 'hung')]);
    expect(outcome).toBe('stopped');
    expect(client.destroyed).toBe(true);
  });
});
