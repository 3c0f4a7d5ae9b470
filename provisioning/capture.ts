// The self-test's rules for touching the camera, the same promises the service makes: no frame while
// the resident's privacy mode is on, none without the viewing LED lit, and no picture left behind.
// The aim snapshot lives in a directory only its owner can enter (mkdtemp, 0700) and is deleted with
// it once the technician has looked.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { OutputPin } from '../device/hardware/index.js';
import { PrivacyState, readJsonFile } from '../device/state/index.js';

/** The file the service keeps its privacy mode in, inside its state directory (device/state/store.ts). */
export const privacyFileName = 'privacy.json';

export interface StoredPrivacy {
  privacyOn: boolean;
  detail: string;
}

/**
 * The privacy mode the service has stored. Missing is a first start (off), as for the service; a file
 * that cannot be read counts as on, as the service would treat it.
 */
export async function readStoredPrivacy(stateDir: string): Promise<StoredPrivacy> {
  const path = join(stateDir, privacyFileName);
  const result = await readJsonFile(path, PrivacyState);
  switch (result.status) {
    case 'ok':
      return result.value.privacyOn
        ? { privacyOn: true, detail: `privacy mode is on (since ${result.value.changedAt})` }
        : { privacyOn: false, detail: 'privacy mode is off' };
    case 'missing':
      return { privacyOn: false, detail: 'no privacy state stored yet (off)' };
    case 'corrupt':
      return {
        privacyOn: true,
        detail: `${path} cannot be read (${result.detail}), so privacy counts as on`,
      };
  }
}

export type LitResult<T> = { ok: true; value: T } | { ok: false; detail: string };

/**
 * Runs `body` with the viewing LED lit, and dark again afterwards, whatever happens. If the LED cannot
 * be lit, `body` does not run: no frame without the LED.
 */
export async function withViewingLed<T>(led: OutputPin, body: () => Promise<T>): Promise<LitResult<T>> {
  try {
    await led.write(true);
  } catch (error) {
    await led.write(false).catch(() => undefined);
    return { ok: false, detail: `the viewing LED could not be lit: ${(error as Error).message}` };
  }
  try {
    return { ok: true, value: await body() };
  } finally {
    await led.write(false).catch(() => undefined);
  }
}

/**
 * Gives `body` a path for the snapshot in a new directory under `tmpDir` that only this user can
 * enter, and removes the directory with everything in it when `body` ends.
 */
export async function inPrivateDirectory<T>(tmpDir: string, body: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpDir, 'trygghetskamera-aim-'));
  try {
    // mkdtemp already makes it 0700; said again so a changed default can never widen it.
    await chmod(dir, 0o700);
    return await body(join(dir, 'aim.jpg'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
