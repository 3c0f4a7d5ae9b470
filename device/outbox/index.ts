// Outbox: QoS 1 records (audit, events) persisted until the central service acknowledges them by id.

export {
  type AckResult,
  type AckSink,
  type AckSource,
  type DeliverAcksDeps,
  deliverAcks,
  parseAck,
} from './acks.js';
export { parseLog } from './log-file.js';
export {
  Outbox,
  type OutboxConnection,
  type OutboxDeps,
  OutboxFullError,
  type OutboxStats,
  outboxFileName,
} from './outbox.js';
