// A request flood as the central service could send it (or anything with write access to
// view/request): refused requests at a set rate over a real broker, and a legitimate request timed
// while the flood runs. Shared by test/mqtt/flood.test.ts and scripts/bench/flood.ts.
import type { MqttClient } from 'mqtt';
import { schemaVersion, topic, ViewDecision } from '../../device/protocol/index.js';
import { createSigner, grantClaims, signGrant, type TestSigner } from './tokens.js';

export interface Flood {
  /** Messages published so far. */
  readonly sent: number;
  /** Whether it is still publishing. */
  readonly running: boolean;
  /** Stops publishing; resolves with the messages sent and the rate achieved. */
  stop(): Promise<{ sent: number; elapsedMs: number; perS: number }>;
}

/**
 * Requests that can never be granted, as a flood would bring them: a grant for this device signed by
 * a key it does not hold, and a grant for another device. Each is refused (unknown-key, wrong-device).
 */
export async function refusedRequests(deviceId: string, nowMs: number): Promise<Buffer[]> {
  const stranger = await createSigner('central-unknown');
  const tokens = [
    await signGrant(stranger, grantClaims(deviceId, nowMs)),
    await signGrant(stranger, grantClaims('another-device', nowMs)),
  ];
  return tokens.map((grant, index) =>
    Buffer.from(JSON.stringify({ schemaVersion, type: 'request', requestId: `req-flood-${index}`, grant })),
  );
}

/**
 * Publishes `payloads` in turn at `perS` messages a second (QoS 0), in 10 ms ticks, until stopped. A
 * publisher that fell behind (a starved process) catches up at most `catchUpS` seconds' worth at once
 * and skips the rest: with the default of 1 s it sends bursts of up to a second's flood.
 */
export function startFlood(
  client: MqttClient,
  deviceId: string,
  payloads: Buffer[],
  perS: number,
  catchUpS = 1,
): Flood {
  const name = topic(deviceId, 'viewRequest');
  const startedMs = performance.now();
  // `due` counts the messages the rate asks for so far; `sent` only those actually published.
  let next = 0;
  let sent = 0;
  let running = true;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    if (!running) return;
    const due = Math.floor(((performance.now() - startedMs) / 1000) * perS);
    // Further behind than that: the publisher itself is the bottleneck; what it missed is not sent.
    next = Math.max(next, due - Math.ceil(perS * catchUpS));
    for (; next < due; next += 1) {
      client.publish(name, payloads[next % payloads.length] ?? Buffer.alloc(0), { qos: 0 });
      sent += 1;
    }
    timer = setTimeout(tick, 10);
  };
  tick();
  return {
    get sent() {
      return sent;
    },
    get running() {
      return running;
    },
    stop: async () => {
      running = false;
      clearTimeout(timer);
      const elapsedMs = performance.now() - startedMs;
      return { sent, elapsedMs, perS: Math.round((sent / elapsedMs) * 1000) };
    },
  };
}

/**
 * Sends one good request (QoS 1) and resolves with its decision and how long it took, from the
 * publish to the decision's arrival on view/answer. The client must be subscribed to view/answer.
 */
export async function timedRequest(
  client: MqttClient,
  signer: TestSigner,
  deviceId: string,
  nowMs: number,
  requestId: string,
  timeoutMs = 10_000,
): Promise<{ decision: 'granted' | 'refused'; reason?: string; sessionId?: string; latencyMs: number }> {
  const grant = await signGrant(signer, grantClaims(deviceId, nowMs));
  const answerTopic = topic(deviceId, 'viewAnswer');
  return new Promise((resolve, reject) => {
    let startedMs = 0;
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no decision for ${requestId} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (received: string, payload: Buffer) => {
      if (received !== answerTopic) return;
      let raw: unknown;
      try {
        raw = JSON.parse(payload.toString());
      } catch {
        return;
      }
      const parsed = ViewDecision.safeParse(raw);
      if (!parsed.success || parsed.data.requestId !== requestId) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({
        decision: parsed.data.decision,
        ...(parsed.data.reason ? { reason: parsed.data.reason } : {}),
        ...(parsed.data.sessionId ? { sessionId: parsed.data.sessionId } : {}),
        latencyMs: performance.now() - startedMs,
      });
    };
    client.on('message', onMessage);
    startedMs = performance.now();
    client.publish(
      topic(deviceId, 'viewRequest'),
      JSON.stringify({ schemaVersion, type: 'request', requestId, grant }),
      { qos: 1 },
    );
  });
}
