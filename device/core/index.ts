// The functional core: refusal and end reasons, and the pure decision rules.
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
export * from './reasons.js';
