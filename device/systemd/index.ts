// systemd integration: readiness, status and shutdown notifications, and a health-gated watchdog.
export { type DatagramSender, libcDatagramSender, type SendOutcome } from './datagram.js';
export {
  createNotifier,
  type Env,
  encodeSockaddr,
  type NotifierDeps,
  type NotifyAddress,
  type NotifyAddressProblem,
  type NotifyResult,
  type ParsedNotifyAddress,
  parseNotifySocket,
  type SystemdNotifier,
} from './notify.js';
export { Watchdog, type WatchdogDeps, watchdogPingIntervalMs } from './watchdog.js';
