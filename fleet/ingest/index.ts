// The fleet's MQTT side: shared subscriptions with a persistent session, stored before acknowledged.
export { defaultIngestOptions, Ingest, type IngestDeps, type IngestOptions } from './ingest.js';
