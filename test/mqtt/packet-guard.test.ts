// The client-side maximum packet size: the fixed header is read as bytes arrive, and a packet that
// says it is larger than the limit closes the connection before it is buffered; a 250 MB PUBLISH from
// a broker that does not enforce max_packet_size costs the device one socket read, not 250 MB.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { MqttLink, maxPacketBytes, PacketSizeGuard } from '../../device/mqtt/index.js';
import { topic } from '../../device/protocol/index.js';
import { maxPacketSizeBytes } from '../../scripts/broker/config.js';

function publish(payloadBytes: number): Buffer {
  return mqttPacket.generate({
    cmd: 'publish',
    topic: 'tk/dev-guard/view/request',
    payload: Buffer.alloc(payloadBytes, 0x61),
    qos: 0,
    retain: false,
    dup: false,
  });
}

describe('PacketSizeGuard', () => {
  it('passes packets up to the limit, however they are split into chunks', () => {
    const guard = new PacketSizeGuard(20_000);
    const stream = Buffer.concat([publish(10), publish(19_000), publish(0), publish(200)]);
    for (let at = 0; at < stream.length; at += 7)
      expect(guard.feed(stream.subarray(at, at + 7))).toBeUndefined();
  });

  it('reports a packet over the limit from its header alone', () => {
    const guard = new PacketSizeGuard(20_000);
    const header = publish(30_000).subarray(0, 4);
    expect(guard.feed(header)).toBeGreaterThan(20_000);
  });

  it('reports a length field longer than MQTT allows', () => {
    const guard = new PacketSizeGuard(20_000);
    expect(guard.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(Number.POSITIVE_INFINITY);
  });

  it('uses the same limit as the broker we ship', () => {
    expect(maxPacketBytes).toBe(maxPacketSizeBytes);
  });
});

describe('the link against a broker that forwards anything', () => {
  let server: Server | undefined;
  let link: MqttLink | undefined;

  afterEach(async () => {
    await link?.stop();
    server?.close();
  });

  /** A fake broker: CONNACK, SUBACK, then a PUBLISH announcing 250 MB, streamed until the socket closes. */
  async function oversizedBroker(): Promise<{ port: number; sent: () => number; closed: Promise<void> }> {
    let sent = 0;
    let resolveClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    let first = true;
    server = createServer((socket: Socket) => {
      const parser = mqttPacket.parser();
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!first) resolveClosed();
      });
      parser.on('packet', (packet) => {
        if (packet.cmd === 'connect')
          socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
        if (packet.cmd === 'subscribe' && first) {
          first = false;
          socket.write(
            mqttPacket.generate({
              cmd: 'suback',
              messageId: packet.messageId ?? 1,
              granted: packet.subscriptions.map(() => 1),
            }),
          );
          const size = 250 * 1024 * 1024;
          // The real header for a 250 MB payload: fixed byte, 4-byte length, topic.
          const topicName = Buffer.from(topic('dev-guard', 'viewRequest'));
          const remaining = 2 + topicName.length + size;
          const length: number[] = [];
          let value = remaining;
          do {
            let byte = value % 128;
            value = Math.floor(value / 128);
            if (value > 0) byte |= 0x80;
            length.push(byte);
          } while (value > 0);
          const head = Buffer.concat([
            Buffer.from([0x30, ...length]),
            Buffer.from([topicName.length >> 8, topicName.length & 0xff]),
            topicName,
          ]);
          socket.write(head);
          sent += head.length;
          const chunk = Buffer.alloc(1024 * 1024, 0x61);
          const pump = () => {
            while (!socket.destroyed && sent < size) {
              sent += chunk.length;
              if (!socket.write(chunk)) {
                socket.once('drain', pump);
                return;
              }
            }
          };
          pump();
        }
      });
      socket.on('data', (data) => parser.parse(data));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return { port: address.port, sent: () => sent, closed };
  }

  it('closes the connection on a 250 MB packet without buffering it, and counts it', async () => {
    const broker = await oversizedBroker();
    const rssBefore = process.memoryUsage().rss;
    const messages: Buffer[] = [];
    link = new MqttLink({
      deviceId: 'dev-guard',
      url: `mqtt://127.0.0.1:${broker.port}`,
      tls: undefined,
      keepaliveS: 30,
      log: silentLogger(),
      reconnect: { initialMs: 60_000, maxMs: 60_000 },
    });
    link.on('message', (_name, payload) => messages.push(payload));
    link.start();
    await broker.closed;
    expect(link.stats.oversizedPackets).toBe(1);
    expect(messages).toEqual([]);
    // The socket closed long before the 250 MB were through; the device held at most a few reads.
    expect(broker.sent()).toBeLessThan(64 * 1024 * 1024);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
  });
});
