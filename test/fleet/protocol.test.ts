// Reading device messages of schema version 1 and 2: the protocol's schemas first, lenient for the other.
import { describe, expect, it } from 'vitest';
import { parseFleetMessage } from '../../fleet/protocol.js';

describe('parseFleetMessage', () => {
  it('reads a version 1 health report', () => {
    const parsed = parseFleetMessage(
      'tk/kam-0001/health',
      JSON.stringify({
        schemaVersion: 1,
        uptimeS: 5,
        load1: 0,
        memFreeMB: 1,
        diskFreeMB: 1,
        privacyOn: true,
        faults: ['camera'],
      }),
    );
    expect(parsed).toMatchObject({
      ok: true,
      message: { deviceId: 'kam-0001', health: { privacyOn: true, faults: ['camera'] } },
    });
  });

  it('reads a version 1 health report (an older device) with fields it does not know, and a new fault kind', () => {
    const parsed = parseFleetMessage(
      'tk/kam-0001/health',
      JSON.stringify({
        schemaVersion: 1,
        uptimeS: 5,
        privacyOn: false,
        nextWindowAt: '2026-03-10T21:00:00Z',
        faults: ['camera', 'microphone'],
        newField: { x: 1 },
      }),
    );
    expect(parsed).toMatchObject({
      ok: true,
      message: { health: { faults: ['camera', 'microphone'], nextWindowAt: '2026-03-10T21:00:00Z' } },
    });
  });

  it('reads version 1 status, info, events and audit records (older devices)', () => {
    expect(
      parseFleetMessage(
        'tk/kam-0001/status',
        '{"schemaVersion":1,"state":"online","connection":1,"extra":true}',
      ).ok,
    ).toBe(true);
    expect(
      parseFleetMessage('tk/kam-0001/info', '{"schemaVersion":1,"firmware":"0.2.0","camera":{}}'),
    ).toMatchObject({ ok: true, message: { info: { firmware: '0.2.0' } } });
    expect(
      parseFleetMessage(
        'tk/kam-0001/event',
        '{"schemaVersion":1,"id":"e1","type":"fault","fault":"camera","active":true,"at":"2026-03-10T21:00:00Z"}',
      ),
    ).toMatchObject({ ok: true, message: { event: { id: 'e1', fault: 'camera' } } });
    expect(
      parseFleetMessage(
        'tk/kam-0001/audit',
        '{"schemaVersion":1,"id":"a1","at":"2026-03-10T21:00:00Z","kind":"request","decision":"refused","reason":"privacy-on"}',
      ),
    ).toMatchObject({ ok: true, message: { audit: { id: 'a1', reason: 'privacy-on' } } });
  });

  it('refuses other versions, missing fields, non-JSON and foreign topics', () => {
    expect(parseFleetMessage('tk/kam-0001/health', '{"schemaVersion":3,"privacyOn":true}')).toEqual({
      ok: false,
      reason: 'schema',
    });
    expect(parseFleetMessage('tk/kam-0001/health', '{"schemaVersion":2}')).toEqual({
      ok: false,
      reason: 'schema',
    });
    expect(parseFleetMessage('tk/kam-0001/health', '{nope')).toEqual({ ok: false, reason: 'not-json' });
    expect(parseFleetMessage('tk/kam-0001/schedule', '{}')).toEqual({ ok: false, reason: 'topic' });
    expect(parseFleetMessage('tk/kam-0001/status', '')).toEqual({ ok: false, reason: 'empty' });
  });

  it('gives an event without an id a stable digest id', () => {
    const text =
      '{"schemaVersion":1,"type":"schedule","accepted":true,"version":7,"at":"2026-03-01T00:00:04.002Z"}';
    const a = parseFleetMessage('tk/kam-0001/event', text);
    const b = parseFleetMessage('tk/kam-0001/event', text);
    const other = parseFleetMessage('tk/kam-0002/event', text);
    if (
      !a.ok ||
      !b.ok ||
      !other.ok ||
      a.message.topic !== 'event' ||
      b.message.topic !== 'event' ||
      other.message.topic !== 'event'
    )
      throw new Error('parse');
    expect(a.message.event.id).toBe(b.message.event.id);
    expect(a.message.event.id).not.toBe(other.message.event.id);
  });
});
