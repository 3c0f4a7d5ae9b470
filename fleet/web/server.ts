// The operations page and its API on node:http: GET / (the page), /api/fleet (every device and the
// at-risk list), /api/devices/<id>/history (timeline), /api/alerts, /events (Server-Sent Events: live
// rows and alerts without reloading), /metrics (Prometheus) and /healthz. Read-only; bind it to an
// internal address (the devices never talk to it).
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Alert } from '../alerts/index.js';
import type { FleetStore } from '../db/index.js';
import type { FleetMetrics } from '../metrics/index.js';
import { compareRisk, type RiskOptions } from '../risk/index.js';
import { type DeviceRow, deviceRow, type FleetCache, looksPerNight } from '../view/index.js';
import { fleetPage } from './page.js';

export interface WebOptions {
  host: string;
  port: number;
  /** How often risk (which moves with time) is re-evaluated for the live page. */
  tickMs: number;
  /** Coalesces bursts of changes into one push. */
  pushDelayMs: number;
  risk: RiskOptions;
  historyDays: number;
}

export interface WebDeps {
  cache: FleetCache;
  store: FleetStore;
  metrics: FleetMetrics;
  clock: () => number;
  log: Logger;
  instance: string;
}

const riskView = (row: DeviceRow) => JSON.stringify([row.risk.atRisk, row.risk.reasons, row.risk.windowAt]);

export class FleetWeb {
  readonly #options: WebOptions;
  readonly #deps: WebDeps;
  #server: Server | undefined;
  readonly #clients = new Set<ServerResponse>();
  readonly #pending = new Set<string>();
  readonly #riskSeen = new Map<string, string>();
  #pushTimer: NodeJS.Timeout | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  readonly #onChanged = (ids: string[]) => this.#schedule(ids);
  #url = '';

  constructor(options: WebOptions, deps: WebDeps) {
    this.#options = options;
    this.#deps = deps;
  }

  get url(): string {
    return this.#url;
  }

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        this.#deps.log.error({ err: (error as Error).message, url: request.url }, 'request failed');
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
        response.end('internal error\n');
      });
    });
    this.#server = server;
    server.listen(this.#options.port, this.#options.host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const host = this.#options.host.includes(':') ? `[${this.#options.host}]` : this.#options.host;
    this.#url = `http://${host}:${port}/`;
    this.#deps.cache.on('changed', this.#onChanged);
    this.#tickTimer = setInterval(() => this.#tick(), this.#options.tickMs);
  }

  #rows(): DeviceRow[] {
    const nowMs = this.#deps.clock();
    return this.#deps.cache
      .all()
      .map((state) => deviceRow(state, nowMs, this.#options.risk))
      .sort((a, b) => (a.device < b.device ? -1 : 1));
  }

  #fleet(): object {
    const rows = this.#rows();
    const atRisk = rows
      .filter((row) => row.risk.atRisk)
      .map((row) => ({ deviceId: row.device, risk: row.risk }))
      .sort(compareRisk)
      .map((entry) => entry.deviceId);
    return {
      nowMs: this.#deps.clock(),
      instance: this.#deps.instance,
      horizonMs: this.#options.risk.horizonMs,
      devices: rows,
      atRisk,
    };
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fleet.invalid');
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const json = (body: unknown) => {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(JSON.stringify(body));
    };
    const history = /^\/api\/devices\/([a-z0-9][a-z0-9-]{2,62})\/history$/.exec(url.pathname);
    switch (url.pathname) {
      case '/':
        response.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        });
        response.end(fleetPage());
        return;
      case '/api/fleet':
        json(this.#fleet());
        return;
      case '/api/alerts':
        json(await this.#deps.store.recentAlerts(100));
        return;
      case '/events':
        this.#subscribe(request, response);
        return;
      case '/metrics':
        response.writeHead(200, { 'content-type': this.#deps.metrics.registry.contentType });
        response.end(await this.#deps.metrics.registry.metrics());
        return;
      case '/healthz':
        json({ ok: true, devices: this.#deps.cache.size });
        return;
    }
    if (history?.[1]) {
      const deviceId = history[1];
      const sinceMs = this.#deps.clock() - this.#options.historyDays * 86_400_000;
      const entries = await this.#deps.store.history(deviceId, sinceMs);
      json({
        device: deviceId,
        sinceMs,
        nowMs: this.#deps.clock(),
        entries,
        looksPerNight: looksPerNight(entries, this.#options.risk.timeZone),
      });
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  #subscribe(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.write('retry: 2000\n\n');
    this.#clients.add(response);
    request.on('close', () => this.#clients.delete(response));
    void this.#deps.store.recentAlerts(20).then(
      (alerts) => {
        this.#send(response, 'snapshot', { ...this.#fleet(), alerts });
      },
      (error: unknown) =>
        this.#deps.log.warn({ err: (error as Error).message }, 'alerts for a new page failed'),
    );
  }

  #send(client: ServerResponse, event: string, data: unknown): void {
    client.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  #broadcast(event: string, data: unknown): void {
    for (const client of this.#clients) this.#send(client, event, data);
  }

  /** Pushes an alert to every open page. */
  alert(alert: Alert): void {
    this.#broadcast('alert', alert);
  }

  #schedule(ids: string[]): void {
    for (const id of ids) this.#pending.add(id);
    this.#pushTimer ??= setTimeout(() => this.#push(), this.#options.pushDelayMs);
  }

  #push(): void {
    this.#pushTimer = undefined;
    const ids = [...this.#pending];
    this.#pending.clear();
    const nowMs = this.#deps.clock();
    const rows: DeviceRow[] = [];
    for (const id of ids) {
      const state = this.#deps.cache.get(id);
      if (!state) continue;
      const row = deviceRow(state, nowMs, this.#options.risk);
      this.#riskSeen.set(id, riskView(row));
      rows.push(row);
    }
    if (rows.length > 0) this.#broadcast('devices', { nowMs, rows });
  }

  /** Time alone changes risk (a window comes within the horizon): push the rows whose risk moved. */
  #tick(): void {
    const nowMs = this.#deps.clock();
    const moved: string[] = [];
    for (const state of this.#deps.cache.all()) {
      const view = riskView(deviceRow(state, nowMs, this.#options.risk));
      if (this.#riskSeen.get(state.deviceId) !== view) moved.push(state.deviceId);
    }
    if (moved.length > 0) this.#schedule(moved);
    for (const client of this.#clients) client.write(': keep-alive\n\n');
  }

  async stop(): Promise<void> {
    this.#deps.cache.off('changed', this.#onChanged);
    if (this.#pushTimer) clearTimeout(this.#pushTimer);
    if (this.#tickTimer) clearInterval(this.#tickTimer);
    this.#pushTimer = undefined;
    this.#tickTimer = undefined;
    for (const client of this.#clients) client.end();
    this.#clients.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
