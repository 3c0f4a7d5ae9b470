// Encoded size of MQTT 3.1.1 control packets, for the byte budget (cellular data is paid by the byte).
// PUBLISH (spec 3.3): fixed header (1 byte + remaining length, 1–4 bytes), topic name (2 + UTF-8
// length), packet identifier (2 bytes, QoS > 0 only), payload.

/** Bytes of the "remaining length" field (spec 2.2.3). */
function lengthBytes(remaining: number): number {
  if (remaining < 128) return 1;
  if (remaining < 16_384) return 2;
  if (remaining < 2_097_152) return 3;
  return 4;
}

export function publishPacketBytes(topicName: string, payload: string | Buffer, qos: 0 | 1): number {
  const remaining =
    2 +
    Buffer.byteLength(topicName) +
    (qos > 0 ? 2 : 0) +
    (typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length);
  return 1 + lengthBytes(remaining) + remaining;
}
