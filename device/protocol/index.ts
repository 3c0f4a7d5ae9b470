// The protocol's public surface: tokens, messages and topics.
export * from './messages.js';
export * from './signalling.js';
export * from './tokens.js';
export * from './topics.js';
export * from './health.js';
