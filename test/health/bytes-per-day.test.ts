// The byte budget: a simulated day at default settings stays under 500 KB of MQTT packets, and the
// packet-size arithmetic agrees with mqtt.js's own encoder.
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { publishPacketBytes } from '../../device/mqtt/index.js';
import { simulateDay } from '../../scripts/bench/bytes-per-day.js';

describe('bytes per day', () => {
  it('computes PUBLISH sizes as mqtt-packet encodes them', () => {
    for (const [payload, qos] of [
      ['', 0],
      ['x'.repeat(100), 1],
      ['y'.repeat(300), 0],
      ['z'.repeat(20_000), 1],
    ] as const) {
      const encoded = mqttPacket.generate({
        cmd: 'publish',
        topic: 'tk/kam-0042/health',
        payload,
        qos,
        dup: false,
        retain: true,
        ...(qos > 0 ? { messageId: 1 } : {}),
      });
      expect(publishPacketBytes('tk/kam-0042/health', payload, qos)).toBe(encoded.length);
    }
  });

  it('stays under 500 KB a day at default settings', async () => {
    const day = await simulateDay();
    console.log(
      `simulated day: ${day.uplinkBytes} B up, ${day.downlinkBytes} B down, ${day.healthMessages} health messages`,
    );
    expect(day.healthMessages).toBeGreaterThanOrEqual(1440);
    expect(day.uplinkBytes).toBeLessThan(500_000);
  });
});
