// Auth: signature checks of grants and schedules against the central service's public keys.

export { plausibleGrant, type ScreenContext } from './screen.js';
export {
  importKeys,
  type KeySet,
  type Verified,
  verifyGrant,
  verifySchedule,
  verifyUpdate,
} from './verify.js';
