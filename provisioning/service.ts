// The installed systemd service, as far as the self-test needs it: is it running, and pausing it
// while the self-test drives the LED and the button (both processes would otherwise fight over the
// same GPIO lines, and the service would take the test press as "privacy on").
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { lastLines, type Runner } from './run.js';

export const serviceName = 'trygghetskamera';

export interface ServiceControl {
  /** Why the service cannot be asked about (no systemd here), or undefined when it can. */
  unavailable(): Promise<string | undefined>;
  /** `systemctl is-active` answer: active, inactive, failed, activating, ... */
  state(): Promise<string>;
  stop(): Promise<string | undefined>;
  start(): Promise<string | undefined>;
}

export function systemdService(deps: { run: Runner; root: string; systemctl: string }): ServiceControl {
  const systemctl = async (args: string[]) => deps.run(deps.systemctl, args, { timeoutMs: 30_000 });
  const act = async (verb: 'start' | 'stop') => {
    const result = await systemctl([verb, `${serviceName}.service`]);
    return result.code === 0 ? undefined : (result.failure ?? lastLines(result.stderr));
  };
  return {
    async unavailable() {
      // Present only when systemd is PID 1 (not in containers or chroots, where systemctl still exists).
      try {
        await access(join(deps.root, 'run/systemd/system'));
      } catch {
        return 'no systemd';
      }
      const probe = await systemctl(['--version']);
      return probe.failure === 'ENOENT' ? 'no systemctl' : undefined;
    },
    async state() {
      const result = await systemctl(['is-active', `${serviceName}.service`]);
      return result.stdout.trim() || result.failure || 'unknown';
    },
    stop: () => act('stop'),
    start: () => act('start'),
  };
}
