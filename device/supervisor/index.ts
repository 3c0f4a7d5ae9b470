// Supervisor: the shell that runs the view-session state machine of core/look.ts against the world.
export {
  type DecisionEvent,
  defaultFloorToleranceMs,
  defaultNegotiationTimeoutMs,
  type LookJournalPort,
  type Phase,
  type SignalRefusedEvent,
  Supervisor,
  type SupervisorDeps,
  type SupervisorEvents,
  type ViewEndedEvent,
} from './supervisor.js';
export {
  instantMedia,
  type MediaPort,
  type MediaRequest,
  type MediaSink,
  MediaStuckError,
  type Persistence,
  type ViewingLed,
} from './types.js';
