// Whether a device's next check-in is at risk: pure functions of its state and the time.
export * from './at-risk.js';
