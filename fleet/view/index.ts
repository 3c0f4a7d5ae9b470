// What the fleet shows: rows for people, and each instance's in-memory picture of the fleet.
export { FleetCache, type FleetCacheOptions } from './cache.js';
export { type DeviceRow, deviceRow, looksPerNight } from './rows.js';
