// Downloads an update package over HTTPS, trusting only the CA the device was provisioned with,
// hashing while it streams, into a temp file that is renamed into place only when the SHA-256
// matches. A partial download (power cut, lost network) leaves only a `.part` file, removed next time.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { get } from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface DownloadRequest {
  url: string;
  sha256: string;
  /** PEM of the CA that must have issued the server's certificate (the broker's CA). */
  ca: string;
  to: string;
  maxBytes?: number;
  timeoutMs?: number;
  /** Aborts the download (the service stops). */
  signal?: AbortSignal;
}

export type DownloadResult =
  | { ok: true; path: string; bytes: number }
  | { ok: false; reason: 'download-failed' | 'hash-mismatch'; detail: string };

export async function downloadPackage(request: DownloadRequest): Promise<DownloadResult> {
  const maxBytes = request.maxBytes ?? 512 * 1024 * 1024;
  const part = `${request.to}.part`;
  await rm(part, { force: true });
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    if (!request.url.startsWith('https://')) throw new Error('only https:// URLs');
    const response = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const options = {
        ca: request.ca,
        timeout: request.timeoutMs ?? 60_000,
        ...(request.signal ? { signal: request.signal } : {}),
      };
      const req = get(request.url, options, resolve);
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
    });
    if (response.statusCode !== 200) {
      response.resume();
      throw new Error(`HTTP ${response.statusCode}`);
    }
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) return done(new Error(`larger than ${maxBytes} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(response, counter, createWriteStream(part, { mode: 0o600 }));
  } catch (error) {
    await rm(part, { force: true });
    return { ok: false, reason: 'download-failed', detail: (error as Error).message.slice(0, 200) };
  }
  const digest = hash.digest('hex');
  if (digest !== request.sha256) {
    await rm(part, { force: true });
    return { ok: false, reason: 'hash-mismatch', detail: `sha256 ${digest}` };
  }
  await rename(part, request.to);
  return { ok: true, path: request.to, bytes };
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const { createReadStream } = await import('node:fs');
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
