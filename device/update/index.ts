// Updates: deciding (pure), downloading with the provisioned CA, handing over to the root-side guard,
// the service's agent that does it all while running, and the guard's persisted state machine with
// automatic rollback.
export { packageArchOf, UpdateAgent, type UpdateAgentDeps, updateLeadMs } from './agent.js';
export {
  type HandleResult,
  handleManifest,
  provenSince,
  type UpdateClientDeps,
  type UpdateProof,
  writeUpdateProof,
} from './client.js';
export { decideUpdate, type UpdateDecision, type UpdateFacts } from './decide.js';
export { type DownloadRequest, type DownloadResult, downloadPackage, sha256File } from './download.js';
export { type GuardDeps, type GuardResult, runGuard } from './guard.js';
export {
  outcomeEvent,
  readUpdateState,
  type UpdateOutcome,
  UpdateState,
  unreportedOutcome,
  writeUpdateState,
} from './state.js';
export { startUpdates, type UpdateWiringDeps } from './wiring.js';
