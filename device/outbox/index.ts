// Outbox: QoS 1 records (audit, events) persisted until the broker acknowledges them.

export { parseLog } from './log-file.js';
export {
  Outbox,
  type OutboxConnection,
  type OutboxDeps,
  OutboxFullError,
  type OutboxStats,
  outboxFileName,
} from './outbox.js';
