// MQTT: the device's connection to the central broker.
export { type BackoffOptions, backoffMs } from './backoff.js';
export { type ConnectionCounter, connectionCounterFile, fileCounter, memoryCounter } from './counter.js';
export {
  type InboundTopic,
  type LinkDeps,
  type LinkEvents,
  type LinkStats,
  MqttLink,
  maxPacketBytes,
} from './link.js';
export { PacketSizeGuard } from './packet-guard.js';
export { publishPacketBytes } from './packet-size.js';
export { TokenBucket, type TokenBucketOptions } from './ratelimit.js';
