// A fleet instance as a child process (`node --import tsx fleet/main.ts …`), so a test can SIGKILL it.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Broker } from '../../../scripts/devstack/broker.js';

export interface FleetProcess {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
  /** SIGKILL: no stop, no goodbye to the broker. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export async function fleetArgs(broker: Broker): Promise<string[]> {
  const ops = await broker.pki.clientCert('ops');
  return ['--broker', broker.url, '--ca', broker.pki.caCert, '--cert', ops.cert, '--key', ops.key];
}

export async function spawnFleet(args: string[], timeoutMs = 90_000): Promise<FleetProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'fleet/main.ts', '--port', '0', '--log-level', 'warn', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = once(child, 'exit');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet did not start:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /\{"fleet":"started","url":"([^"]+)"\}/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fleet exited with ${code} during start:\n${output}`));
    });
  });
  return {
    child,
    url,
    output: () => output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code as number | null;
    },
  };
}
