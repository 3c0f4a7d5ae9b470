// Headless Chromium inside one of the lab's network namespaces: playwright starts the browser through a
// small wrapper that execs it under `ip netns exec` (the DevTools pipe is inherited, so playwright drives
// it as usual). The page cannot reach this machine's loopback, so tests route its requests instead
// (`context.route`, with viewerResponse from scripts/devstack/viewer-server.ts).
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromiumLaunchOptions } from '../devstack/chromium.js';
import type { Lab, Role } from './lab.js';

export function chromiumIn(
  lab: Lab,
  role: Role,
  dir: string,
): { executablePath: string; headless: boolean; args: string[] } {
  const options = chromiumLaunchOptions();
  const wrapper = join(dir, 'chromium-in-namespace');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec /usr/sbin/ip netns exec ${lab.ns(role)} ${options.executablePath} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return {
    ...options,
    executablePath: wrapper,
    // The routed page has no address of its own, so Chromium counts it as public and would block its
    // WebSocket to the lab's 100.64.0.1 (a private address space) as a local-network request.
    args: [...options.args, '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessChecks'],
  };
}
