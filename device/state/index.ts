// State: crash-safe files in the state directory.
export { readJsonFile, writeFileAtomic, type ReadResult } from './atomic.js';
export {
  Counters,
  type LoadedState,
  PrivacyState,
  ReplayCache,
  StateStore,
  StoredSchedule,
} from './store.js';
