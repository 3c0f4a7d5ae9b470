// Acknowledgements from tk/<id>/ack to the outbox: what parses frees records, anything else frees
// nothing and is logged.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { deliverAcks, parseAck } from '../../device/outbox/index.js';
import { schemaVersion } from '../../device/protocol/index.js';
import { captureLog } from '../hardware/log-capture.js';

const message = (body: unknown): Buffer => Buffer.from(JSON.stringify(body));

class FakeLink extends EventEmitter<{ ack: [payload: Buffer] }> {}

function wire() {
  const link = new FakeLink();
  const acknowledged: string[][] = [];
  const captured = captureLog();
  const stop = deliverAcks({
    link,
    outbox: {
      acknowledge: (ids) => {
        acknowledged.push([...ids]);
        return ids.length;
      },
    },
    log: captured.log,
  });
  return { link, acknowledged, captured, stop };
}

describe('parseAck', () => {
  it('returns the ids of a valid acknowledgement', () => {
    expect(parseAck(message({ schemaVersion, ids: ['a', 'b'] }))).toEqual({ ok: true, ids: ['a', 'b'] });
  });

  it.each([
    ['not JSON', Buffer.from('{"ids": ['), /not JSON/],
    ['no ids', message({ schemaVersion, ids: [] }), /^ids: /],
    ['101 ids', message({ schemaVersion, ids: Array.from({ length: 101 }, (_, i) => `r${i}`) }), /^ids: /],
    ['an id that is not a string', message({ schemaVersion, ids: [7] }), /^ids\.0: /],
    ['an unknown field', message({ schemaVersion, ids: ['a'], all: true }), /\(top level\)/],
    ['another schema version', message({ schemaVersion: 99, ids: ['a'] }), /^schemaVersion: /],
  ])('refuses %s', (_what, payload, detail) => {
    const result = parseAck(payload);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.detail).toMatch(detail);
  });

  it('refuses a message larger than the limit without parsing it', () => {
    expect(parseAck(Buffer.alloc(40_000, 0x20))).toEqual({ ok: false, detail: '40000 bytes is too large' });
  });
});

describe('deliverAcks', () => {
  it('hands the ids of each acknowledgement to the outbox', () => {
    const { link, acknowledged, stop } = wire();
    link.emit('ack', message({ schemaVersion, ids: ['a'] }));
    link.emit('ack', message({ schemaVersion, ids: ['b', 'c'] }));
    expect(acknowledged).toEqual([['a'], ['b', 'c']]);
    stop();
  });

  it('frees nothing for a message that does not parse, and logs why', () => {
    const { link, acknowledged, captured, stop } = wire();
    link.emit('ack', Buffer.from('ids: a, b'));
    expect(acknowledged).toEqual([]);
    expect(captured.records()).toContainEqual(
      expect.objectContaining({ level: 40, detail: 'not JSON', msg: 'acknowledgement refused' }),
    );
    stop();
  });

  it('stops listening when the returned function is called', () => {
    const { link, acknowledged, stop } = wire();
    stop();
    link.emit('ack', message({ schemaVersion, ids: ['late'] }));
    expect(acknowledged).toEqual([]);
    expect(link.listenerCount('ack')).toBe(0);
  });
});
