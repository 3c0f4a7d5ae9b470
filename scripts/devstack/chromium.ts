// Headless Chromium as the tests and benchmarks launch it: no sandbox, GPU or background traffic.

/** Options for `chromium.launchPersistentContext(profileDir, chromiumLaunchOptions())`; a fresh copy each call. */
export function chromiumLaunchOptions(): { executablePath: string; headless: boolean; args: string[] } {
  return {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Chromium leaves loopback out of ICE by default; the device here listens on 127.0.0.1 only.
      '--allow-loopback-in-peer-connection',
    ],
  };
}
