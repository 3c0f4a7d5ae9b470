// Clock: the one clock and timer interface (clock.ts); is the wall clock trusted (plausible,
// synchronised, not below the time floor), did it step, and which used nonces must still be kept.

export {
  type ClockCheck,
  type ClockKind,
  type ClockMode,
  type ClockVerdict,
  clockCheck,
  combinedClockCheck,
  flagFileSyncCheck,
  kernelSyncCheck,
  type SyncCheck,
} from './check.js';
export { type Clock, systemClock, systemTimers, type Timers } from './clock.js';
export {
  checkFloor,
  earliestPlausibleMs,
  type FloorGuard,
  type FloorVerdict,
  savedFloorGuard,
  TimeFloor,
  type TimeFloorDeps,
  TimeFloorFile,
  timeFloorFileName,
} from './floor.js';
export {
  adjtimexReader,
  interpretKernelTime,
  type KernelReadResult,
  type KernelTimeReader,
  type KernelTimeState,
  maxErrorLimitUs,
  STA_UNSYNC,
  type SyncVerdict,
  TIME_ERROR,
} from './kernel.js';
export { pruneNoncesByFloor } from './nonces.js';
export {
  type ClockReading,
  type ClockStep,
  detectStep,
  StepWatcher,
  type StepWatcherDeps,
  type StepWatcherEvents,
} from './step.js';
export { ClockWatch, type ClockWatchDeps, type ClockWatchEvents } from './watch.js';
