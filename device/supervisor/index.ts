// Supervisor: applies the core's rules to the world and owns the view session's state machine.
export {
  type DecisionEvent,
  type Persistence,
  type Phase,
  Supervisor,
  type SupervisorDeps,
  type SupervisorEvents,
  type ViewEndedEvent,
} from './supervisor.js';
export {
  noMediaView,
  systemTimers,
  type Timers,
  type ViewingLed,
  type ViewPort,
  type ViewSession,
} from './types.js';
