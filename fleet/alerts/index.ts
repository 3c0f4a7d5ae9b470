// Alerts when a check-in becomes at risk: webhook and page, claimed once across instances.
export { type Alert, Alerter, type AlerterOptions, alertKey, alertText } from './alerter.js';
