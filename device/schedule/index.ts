// Schedule: evaluating the agreed check-in windows in local time.
export {
  localStart,
  nextWindowAfter,
  type OpenWindow,
  openWindowAt,
  windowsEndingBetween,
} from './windows.js';
export { loadZone, wallClock, type Zone } from './zoneinfo.js';
