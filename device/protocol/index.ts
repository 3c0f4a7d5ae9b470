// The protocol's public surface: tokens, messages, audit records, acknowledgements, topics and updates.
export * from './ack.js';
export * from './audit.js';
export * from './decommission.js';
export * from './health.js';
export * from './inbound.js';
export * from './messages.js';
export * from './outbound.js';
export * from './reasons.js';
export * from './signalling.js';
export * from './tokens.js';
export * from './topics.js';
export * from './update.js';
