// The central service's acknowledgements, from the link to the outbox: each message on tk/<id>/ack is
// parsed (zod, at the boundary) and the ids it names leave the outbox. A message that does not parse
// is logged and dropped: it frees nothing, so at worst a record is sent once more.
import type { Logger } from '../log/index.js';
import { AckMessage } from '../protocol/index.js';

/** The link as the acknowledgements' source (MqttLink's `ack` event). */
export interface AckSource {
  on(event: 'ack', listener: (payload: Buffer) => void): unknown;
  off(event: 'ack', listener: (payload: Buffer) => void): unknown;
}

/** The outbox as the acknowledgements' sink. */
export interface AckSink {
  acknowledge(ids: readonly string[]): number;
}

export interface DeliverAcksDeps {
  link: AckSource;
  outbox: AckSink;
  log: Logger;
  /** Larger messages are dropped unparsed; 100 ids of 128 characters fit in far less. Default 32 KiB. */
  maxBytes?: number;
}

export type AckResult = { ok: true; ids: string[] } | { ok: false; detail: string };

/** Parses one acknowledgement; pure. */
export function parseAck(payload: Buffer, maxBytes = 32_768): AckResult {
  if (payload.length > maxBytes) return { ok: false, detail: `${payload.length} bytes is too large` };
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, detail: 'not JSON' };
  }
  const parsed = AckMessage.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, detail: `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, ids: parsed.data.ids };
}

/**
 * Feeds the link's acknowledgements to the outbox until the returned function is called. Call it
 * before the link starts, so no acknowledgement of the first connection is missed.
 */
export function deliverAcks(deps: DeliverAcksDeps): () => void {
  const listener = (payload: Buffer): void => {
    const result = parseAck(payload, deps.maxBytes);
    if (!result.ok) {
      deps.log.warn({ detail: result.detail }, 'acknowledgement refused');
      return;
    }
    const removed = deps.outbox.acknowledge(result.ids);
    deps.log.debug({ ids: result.ids.length, removed }, 'acknowledged by the central service');
  };
  deps.link.on('ack', listener);
  return () => {
    deps.link.off('ack', listener);
  };
}
