// Audit: who looked, when and for how long, and which agreed check-ins did not take place.
export { attachAudit } from './attach.js';
export { type AuditRange, type AuditRecords, auditFileName, readAuditRecords } from './files.js';
export { LookJournal, sessionEndId } from './look-journal.js';
export {
  type InterruptedEndReason,
  type InterruptedSession,
  interruptedEndReason,
  interruptedSessionEnd,
  type OpenSession,
  OpenSessionFile,
  OpenSessionJournal,
  type OpenSessionJournalDeps,
  openSessionFileName,
} from './open-session.js';
export {
  type AuditEntry,
  type AuditOutbox,
  AuditTrail,
  type AuditTrailDeps,
  type RecordOptions,
} from './trail.js';
export { nameUuid } from './uuid.js';
export { WindowWatch, type WindowWatchDeps, windowMissedId } from './window-watch.js';
