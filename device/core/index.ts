// The functional core: the pure decision rules and the view session state machine.
export {
  type Conditions,
  type Decision,
  type DecisionInput,
  decide,
  type EndCheckInput,
  type Limits,
  mustEnd,
  pruneNonces,
  type RunningView,
} from './decision.js';
export * from './look.js';
export * from './signalling.js';
