// State: crash-safe files in the state directory.
export { type ReadResult, readJsonFile, writeFileAtomic } from './atomic.js';
export {
  Counters,
  type LoadedState,
  PrivacyState,
  ReplayCache,
  StateStore,
  StoredSchedule,
} from './store.js';
