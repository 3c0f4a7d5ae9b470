// The protocol's public surface: tokens, messages, audit records and topics.
export * from './audit.js';
export * from './health.js';
export * from './messages.js';
export * from './signalling.js';
export * from './tokens.js';
export * from './topics.js';
export * from './reasons.js';
export * from './inbound.js';
export * from './outbound.js';
