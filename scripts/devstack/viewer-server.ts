// The demo's own small web server on 127.0.0.1 (it is not the device: the device opens no port). It serves
// the reference viewer (viewer/), the mqtt.js browser bundle, the viewer's settings and the reason texts,
// and the demo's controls: sign a grant, press the simulated privacy button, switch the schedule.
// POSTs need an `x-demo` header so a page on another origin cannot trigger them with a plain form.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { EndReason } from '../../device/protocol/reasons.js';
import { refusalText } from '../../device/protocol/reasons.js';
import { DtlsFingerprint, Sha256Base64url } from '../../device/protocol/tokens.js';

/** What binds a grant to one console: its DTLS certificate and the hash of its hang-up secret. */
export const GrantHolder = z.object({ fp: DtlsFingerprint, hup: Sha256Base64url });
export type GrantHolder = z.infer<typeof GrantHolder>;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Plain words for each end reason, for the operator's screen (the refusal texts live in reasons.ts). */
export const endText: Record<EndReason, string> = {
  'operator-hangup': 'you hung up',
  'max-duration': 'the look reached its longest allowed length',
  'window-end': 'the agreed check-in window closed',
  'grant-expired': 'the grant expired',
  'privacy-on': 'the resident turned privacy mode on',
  'led-fault': 'the viewing LED failed, so the look had to stop',
  'clock-unsynced': "the device's clock lost synchronisation",
  'schedule-changed': 'a new schedule closed this window',
  'camera-failure': 'the camera or its video pipeline failed',
  'peer-gone': 'the video connection was lost',
  shutdown: 'the camera service stopped',
  interrupted: 'the camera lost power or its service crashed during the look',
};

export interface ViewerPageConfig {
  brokerUrl: string;
  username: string;
  password: string;
  deviceId: string;
}

export interface ViewerServerDeps {
  page: ViewerPageConfig;
  /** Signs a demo grant bound to the console that asks: its DTLS fingerprint and hang-up hash. */
  signGrant(holder: GrantHolder): Promise<string>;
  pressPrivacy(): Promise<{ privacyOn: boolean }>;
  setSchedule(kind: string): Promise<{ version: number; kind: string }>;
}

const files: Record<string, [string, string]> = {
  '/': ['viewer/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['viewer/index.html', 'text/html; charset=utf-8'],
  '/viewer.js': ['viewer/viewer.js', 'text/javascript; charset=utf-8'],
  '/mqtt.min.js': ['node_modules/mqtt/dist/mqtt.min.js', 'text/javascript; charset=utf-8'],
};

export interface ViewerServer {
  url: string;
  close(): Promise<void>;
}

export interface ViewerResponse {
  status: number;
  contentType: string;
  body: Buffer | string;
}

/**
 * What the viewer's server answers to one request: the page's files, its config, and the demo's grant,
 * privacy and schedule buttons. Also used without a server (the network lab routes a browser's requests
 * to it, since the browser there cannot reach this machine's loopback).
 */
export async function viewerResponse(
  deps: ViewerServerDeps,
  request: { method: string; url: string; demoHeader: boolean },
): Promise<ViewerResponse> {
  const json = (status: number, body: unknown): ViewerResponse => ({
    status,
    contentType: 'application/json',
    body: JSON.stringify(body),
  });
  const url = new URL(request.url, 'http://127.0.0.1');
  if (request.method === 'GET') {
    const file = files[url.pathname];
    if (file) return { status: 200, contentType: file[1], body: await readFile(join(repoRoot, file[0])) };
    if (url.pathname === '/config.json') return json(200, { ...deps.page, demo: true });
    if (url.pathname === '/reasons.json') return json(200, { refusal: refusalText, ended: endText });
  } else if (request.method === 'POST' && request.demoHeader) {
    if (url.pathname === '/grant') {
      const holder = GrantHolder.safeParse({
        fp: url.searchParams.get('fp'),
        hup: url.searchParams.get('hup'),
      });
      if (!holder.success) return json(400, { error: 'fp and hup are required' });
      return json(200, { grant: await deps.signGrant(holder.data) });
    }
    if (url.pathname === '/privacy') return json(200, await deps.pressPrivacy());
    if (url.pathname === '/schedule') {
      return json(200, await deps.setSchedule(url.searchParams.get('kind') ?? 'open'));
    }
  }
  return json(404, { error: 'not found' });
}

export async function startViewerServer(deps: ViewerServerDeps, port = 0): Promise<ViewerServer> {
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const answer = await viewerResponse(deps, {
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      demoHeader: request.headers['x-demo'] === '1',
    });
    response.writeHead(answer.status, { 'content-type': answer.contentType, 'cache-control': 'no-store' });
    response.end(answer.body);
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: String(error) }));
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveListen());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}
