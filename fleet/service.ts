// Wiring of one fleet instance: database (migrated), store, in-memory view, MQTT ingest, alerts,
// metrics and the web page. Started in that order, stopped in reverse, each stop on its own; startup
// is cancellable. Reads no files and no environment: fleet/main.ts does that.
import type { IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import { Alerter } from './alerts/index.js';
import { type Database, FleetStore, migrate, openDatabase } from './db/index.js';
import { defaultIngestOptions, Ingest } from './ingest/index.js';
import { createMetrics, type FleetMetrics } from './metrics/index.js';
import { defaultRiskOptions, type RiskOptions } from './risk/index.js';
import { FleetCache } from './view/index.js';
import { FleetWeb } from './web/index.js';

export interface FleetConfig {
  /** Names this instance: its MQTT client id is `fleet-<instance>`, fixed so its session persists. */
  instance: string;
  /** mqtt.js options for the broker (`url` plus TLS material already read). */
  mqtt: IClientOptions & { url?: string };
  /** A SQLite file (default) or a postgres:// URL. */
  database: string;
  http: { host: string; port: number };
  webhookUrl?: string | undefined;
  risk?: Partial<RiskOptions>;
  group?: string;
  sessionExpiryS?: number;
  retainedSyncMs?: number;
  /** How often every instance reads the retained state again (ms; 0: only at connect). */
  retainedRefreshMs?: number;
  pollIntervalMs?: number;
  evaluateIntervalMs?: number;
}

export interface FleetDeps {
  log: Logger;
  clock?: () => number;
  signal?: AbortSignal;
}

export interface Fleet {
  readonly url: string;
  readonly store: FleetStore;
  readonly cache: FleetCache;
  readonly ingest: Ingest;
  readonly alerter: Alerter;
  readonly metrics: FleetMetrics;
  /** Stops everything in reverse order; resolves with 0, or 1 if any stop failed. Idempotent. */
  stop(): Promise<number>;
}

export async function startFleet(config: FleetConfig, deps: FleetDeps): Promise<Fleet> {
  const clock = deps.clock ?? Date.now;
  const log = deps.log.child({ instance: config.instance });
  const risk: RiskOptions = { ...defaultRiskOptions, ...config.risk };
  const stops: [string, () => Promise<unknown> | unknown][] = [];
  let stopping: Promise<number> | undefined;
  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      let code = 0;
      for (const [name, stopOne] of stops.reverse()) {
        try {
          await stopOne();
        } catch (error) {
          code = 1;
          log.error({ err: (error as Error).message, component: name }, 'stop failed');
        }
      }
      return code;
    })();
    return stopping;
  };
  const checkAborted = () => {
    if (deps.signal?.aborted) throw new Error('fleet start aborted');
  };
  try {
    const db: Database = openDatabase(config.database);
    stops.push(['database', () => db.close()]);
    const applied = await migrate(db);
    if (applied.length > 0)
      log.child({ mod: 'db' }).info({ applied, dialect: db.dialect.name }, 'migrations applied');
    checkAborted();
    const store = new FleetStore(db);
    const cache = new FleetCache(
      { store, clock, log: log.child({ mod: 'view' }) },
      { pollIntervalMs: config.pollIntervalMs ?? 250, pollOverlapMs: 2000 },
    );
    await cache.start();
    stops.push(['view', () => cache.stop()]);
    checkAborted();
    let malformed = (): number => 0;
    const metrics = createMetrics({ cache, clock, risk, malformed: () => malformed() });
    const alerter = new Alerter(
      {
        webhookUrl: config.webhookUrl,
        evaluateIntervalMs: config.evaluateIntervalMs ?? 1000,
        webhookTimeoutMs: 5000,
        webhookAttempts: 3,
        risk,
      },
      { store, cache, clock, log: log.child({ mod: 'alerts' }) },
    );
    const web = new FleetWeb(
      { host: config.http.host, port: config.http.port, tickMs: 1000, pushDelayMs: 50, risk, historyDays: 7 },
      { cache, store, metrics, clock, log: log.child({ mod: 'web' }), instance: config.instance },
    );
    await web.start();
    stops.push(['web', () => web.stop()]);
    alerter.on('alert', (alert) => web.alert(alert));
    const ingest = new Ingest(
      {
        connect: config.mqtt,
        clientId: `fleet-${config.instance}`,
        group: config.group ?? defaultIngestOptions.group,
        sessionExpiryS: config.sessionExpiryS ?? defaultIngestOptions.sessionExpiryS,
        retainedSyncMs: config.retainedSyncMs ?? defaultIngestOptions.retainedSyncMs,
        retainedRefreshMs: config.retainedRefreshMs ?? defaultIngestOptions.retainedRefreshMs,
        maxBatch: defaultIngestOptions.maxBatch,
      },
      { store, log: log.child({ mod: 'mqtt' }), clock },
    );
    malformed = () => ingest.malformed;
    ingest.on('applied', (result) => {
      metrics.record(result);
      cache.update(result.changed);
      if (result.changed.length > 0) alerter.evaluate(result.changed.map((state) => state.deviceId));
    });
    stops.push(['mqtt', () => ingest.stop()]);
    const started = ingest.start(deps.signal);
    await alerter.start();
    stops.push(['alerts', () => alerter.stop()]);
    await started;
    log.info({ url: web.url, devices: cache.size, dialect: db.dialect.name }, 'fleet service started');
    return { url: web.url, store, cache, ingest, alerter, metrics, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
