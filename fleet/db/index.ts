// The fleet's database: SQLite or PostgreSQL behind one small dialect layer, plain SQL migrations, the store.
export { type Database, type Dialect, openDatabase, type Sql } from './database.js';
export { migrate, splitStatements } from './migrate.js';
export { type AlertRecord, type BatchResult, FleetStore, type Incoming, type StoredDevice } from './store.js';
