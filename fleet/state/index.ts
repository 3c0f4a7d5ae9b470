// The fleet's knowledge of each device: plain data and the pure reducer over device messages.
export * from './device-state.js';
