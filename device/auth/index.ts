// Auth: signature checks of grants and schedules against the central service's public keys.
export {
  importKeys,
  type KeySet,
  type Verified,
  verifyGrant,
  verifySchedule,
  verifyUpdate,
} from './verify.js';
