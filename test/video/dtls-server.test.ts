// werift's DTLS server with the device's changes (dtls-server.ts): a first ClientHello is answered at
// once with the ServerHello flight, no HelloVerifyRequest round trip, and a flight leaves in one datagram. Real werift client and server,
// joined in memory (warm-up.ts); the oracles are the datagrams themselves (record and handshake headers
// read here, RFC 6347 4.1 and 4.2.2) and that the handshake completes with SRTP keys both sides agree on
// (memoryHandshake sends SRTP one way and decrypts it the other). A wrong transcript or message_seq
// makes the client's Finished fail, and the handshake times out.
//
// The first test runs before the changes are installed in this file's process: werift's own server sends
// a HelloVerifyRequest and one record per datagram, so the assertions below can fail.

import { describe, expect, it } from 'vitest';
import { RTCDtlsTransport } from 'werift';
import {
  coalescing,
  maxDatagramBytes,
  repairDtlsRetransmissions,
  tuneDtlsServer,
  withCookie,
} from '../../device/video/index.js';
import { memoryHandshake } from '../../device/view/warm-up.js';
import { dtlsPipe, fragmented, handshakes, impostorOutcomes, type Network } from './dtls-pipe.js';

const handshakeRecord = 22;
const clientHello = 1;
const serverHello = 2;
const helloVerifyRequest = 3;

/** One datagram: who sent it and its plaintext (epoch 0) handshake records as [type, message_seq]. */
interface Seen {
  from: 'server' | 'client';
  records: Array<[number, number]>;
}

/** Record header: type(1) version(2) epoch(2) sequence(6) length(2); handshake: type(1) length(3) seq(2). */
function read(from: Seen['from'], datagram: Buffer): Seen {
  const records: Array<[number, number]> = [];
  for (let at = 0; at + 13 <= datagram.length; at += 13 + datagram.readUInt16BE(at + 11)) {
    if (datagram[at] === handshakeRecord && datagram.readUInt16BE(at + 3) === 0) {
      records.push([datagram[at + 13]!, datagram.readUInt16BE(at + 17)]);
    }
  }
  return { from, records };
}

async function run(drop?: (seen: Seen, index: number) => boolean): Promise<Seen[]> {
  const certificate = await RTCDtlsTransport.SetupCertificate();
  const seen: Seen[] = [];
  await memoryHandshake(certificate, (from, datagram) => {
    const entry = read(from, datagram);
    seen.push(entry);
    return drop?.(entry, seen.length - 1) !== true;
  });
  return seen;
}

const sent = (seen: Seen[], from: Seen['from'], type: number) =>
  seen.filter((entry) => entry.from === from && entry.records.some(([t]) => t === type));

describe('werift DTLS server as the device runs it', () => {
  it('control: werift as it comes sends a HelloVerifyRequest, and each record in a datagram of its own', async () => {
    const seen = await run();
    const server = seen.filter((entry) => entry.from === 'server' && entry.records.length > 0);
    expect(server[0]?.records).toEqual([[helloVerifyRequest, 0]]);
    expect(server[1]?.records).toEqual([[serverHello, 1]]);
    expect(sent(seen, 'client', clientHello)).toHaveLength(2);
  });

  it('answers the first ClientHello with the whole ServerHello flight in one datagram (message_seq from 0)', async () => {
    tuneDtlsServer();
    const seen = await run();
    expect(sent(seen, 'server', helloVerifyRequest)).toHaveLength(0);
    expect(sent(seen, 'client', clientHello)).toHaveLength(1);
    // ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone.
    const first = seen.find((entry) => entry.from === 'server');
    expect(first?.records).toEqual([
      [2, 0],
      [11, 1],
      [12, 2],
      [13, 3],
      [14, 4],
    ]);
    // The handshake completed (memoryHandshake resolved after SRTP both ways).
  });

  it('sends the flight again, not a HelloVerifyRequest, when the client resends its ClientHello', async () => {
    tuneDtlsServer();
    // The first ServerHello flight is lost: the client sends its ClientHello again (after 0.5 s).
    const seen = await run((entry, index) => entry.from === 'server' && index < 2);
    expect(sent(seen, 'server', helloVerifyRequest)).toHaveLength(0);
    expect(sent(seen, 'client', clientHello).length).toBeGreaterThanOrEqual(2);
    const answers = sent(seen, 'server', serverHello);
    expect(answers.length).toBeGreaterThanOrEqual(2);
    for (const answer of answers) expect(answer.records.map(([, seq]) => seq)).toEqual([0, 1, 2, 3, 4]);
  });

  it('coalesces the records of one run into datagrams of at most 1,200 bytes, in order', async () => {
    const datagrams: Buffer[] = [];
    const send = coalescing(async (datagram) => {
      datagrams.push(datagram);
    });
    const records = [500, 500, 300, 900, 50].map((size, i) => Buffer.alloc(size, i));
    await Promise.all(records.map((record) => send(record)));
    expect(datagrams.map((datagram) => datagram.length)).toEqual([1000, 1200, 50]);
    expect(Buffer.concat(datagrams)).toEqual(Buffer.concat(records));
    expect(maxDatagramBytes).toBe(1200);
    // A later run is a datagram of its own.
    await send(Buffer.alloc(10, 9));
    expect(datagrams).toHaveLength(4);
  });

  it('puts a cookie in place of the empty one, and refuses a ClientHello that has one', () => {
    // version, random, session id (2 bytes), empty cookie, then the suites and the rest.
    const body = Buffer.concat([
      Buffer.from([0xfe, 0xfd]),
      Buffer.alloc(32, 7),
      Buffer.from([2, 0xaa, 0xbb]),
      Buffer.from([0]),
      Buffer.from([0, 2, 0xc0, 0x2b, 1, 0]),
    ]);
    const cookie = Buffer.from('0123456789abcdefghij');
    const out = withCookie(body, cookie);
    expect(out.subarray(0, 37)).toEqual(body.subarray(0, 37));
    expect(out[37]).toBe(20);
    expect(out.subarray(38, 58)).toEqual(cookie);
    expect(out.subarray(58)).toEqual(body.subarray(38));
    expect(() => withCookie(out, cookie)).toThrow(/without a cookie/);
  });
  it('completes when a flight is lost, duplicated, delayed or reordered, with the retransmission repair', async () => {
    repairDtlsRetransmissions();
    tuneDtlsServer();
    const certificate = await RTCDtlsTransport.SetupCertificate();
    const has = (datagram: Buffer, type: number) => handshakes(datagram).some(([t]) => t === type);
    /** The first datagram `from` sends that `matches` gets `delays`; all others arrive at once. */
    const first = (from: string, matches: (d: Buffer) => boolean, delays: number[]): Network => {
      let done = false;
      return (sender, datagram) => {
        if (done || sender !== from || !matches(datagram)) return [0];
        done = true;
        return delays;
      };
    };
    const changeCipherSpec = (datagram: Buffer) => datagram[0] === 20;
    const networks: Record<string, Network> = {
      'ClientHello twice': first('client', (d) => has(d, clientHello), [0, 1]),
      'ClientHello again after the flight': first('client', (d) => has(d, clientHello), [0, 700]),
      'ServerHello flight lost': first('server', (d) => has(d, serverHello), []),
      'ServerHello flight twice': first('server', (d) => has(d, serverHello), [0, 5]),
      'ServerHello flight late (ClientHello resent)': first('server', (d) => has(d, serverHello), [700]),
      'client Certificate lost': first('client', (d) => has(d, 11), []),
      'client ClientKeyExchange lost': first('client', (d) => has(d, 16), []),
      'client flight 5 reversed': (from, d) =>
        from !== 'client' ? [0] : has(d, 11) ? [40] : has(d, 16) ? [30] : has(d, 15) ? [20] : [0],
      'server ChangeCipherSpec+Finished lost': first('server', changeCipherSpec, []),
      'every datagram twice, with jitter': () => [Math.random() * 20, Math.random() * 20],
    };
    const outcomes: Record<string, string> = {};
    for (const [name, network] of Object.entries(networks)) {
      const pipe = dtlsPipe(certificate, network, { timeoutMs: 5000 });
      outcomes[name] = await pipe.outcome;
      pipe.close();
    }
    expect(outcomes).toEqual(Object.fromEntries(Object.keys(networks).map((name) => [name, 'connected'])));
  }, 60_000);

  it('takes a ClientHello that comes in fragments, in one datagram or several', async () => {
    tuneDtlsServer();
    const certificate = await RTCDtlsTransport.SetupCertificate();
    for (const together of [true, false]) {
      const pipe = dtlsPipe(certificate, () => [0], {
        timeoutMs: 3000,
        beforeConnect: ({ client, injectAtServer }) => {
          const transport = client.transport as unknown as { send: (datagram: Buffer) => Promise<void> };
          const send = transport.send;
          transport.send = async (datagram) => {
            if (!handshakes(datagram).some(([type]) => type === clientHello)) return send(datagram);
            const records = fragmented(datagram, 3);
            if (together) setImmediate(() => injectAtServer(Buffer.concat(records)));
            else for (const record of records) setImmediate(() => injectAtServer(record));
          };
        },
      });
      expect(await pipe.outcome).toBe('connected');
      expect(
        pipe.sent.filter(({ datagram }) => handshakes(datagram).some(([t]) => t === helloVerifyRequest)),
      ).toEqual([]);
      pipe.close();
    }
  });

  it("sends nothing for another party's ClientHello once one is answered, and the handshake completes", async () => {
    tuneDtlsServer();
    const certificate = await RTCDtlsTransport.SetupCertificate();
    // Another client's ClientHello, as anyone who reaches the device's socket could send it.
    const other = dtlsPipe(certificate, () => [], { timeoutMs: 1 });
    const foreign = other.sent[0]?.datagram;
    other.close();
    expect(foreign && handshakes(foreign)).toEqual([[clientHello, 0]]);
    const pipe = dtlsPipe(certificate, () => [0], { timeoutMs: 3000 });
    setTimeout(() => pipe.injectAtServer(foreign!), 5);
    expect(await pipe.outcome).toBe('connected');
    const flights = pipe.sent.filter(
      ({ from, datagram }) => from === 'server' && handshakes(datagram).length > 0,
    );
    expect(flights).toHaveLength(1);
    pipe.close();
  });

  it("leaves a ClientHello after connect to werift's renegotiation, each copy answered alike", async () => {
    tuneDtlsServer();
    const certificate = await RTCDtlsTransport.SetupCertificate();
    const pipe = dtlsPipe(certificate, () => [0], { timeoutMs: 3000 });
    expect(await pipe.outcome).toBe('connected');
    const hello = pipe.sent.find(({ datagram }) => handshakes(datagram).some(([t]) => t === clientHello));
    const before = pipe.sent.length;
    for (const delayMs of [0, 20]) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      pipe.injectAtServer(hello!.datagram);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const answers = pipe.sent.slice(before).filter(({ from }) => from === 'server');
    expect(answers.map(({ datagram }) => handshakes(datagram))).toEqual([
      [[helloVerifyRequest, 0]],
      [[helloVerifyRequest, 0]],
    ]);
    pipe.close();
  });

  it("refuses a client whose CertificateVerify is not made with its certificate's key", async () => {
    repairDtlsRetransmissions();
    tuneDtlsServer();
    // The impostor sends the console's certificate, which the grant's fingerprint check would pass.
    expect(await impostorOutcomes('client')).toEqual([
      'connected',
      "server error: Error: the client's CertificateVerify does not verify",
    ]);
  });

  it('fails the records, not the process, when the send throws', async () => {
    const send = coalescing(() => {
      throw new Error('socket gone');
    });
    await expect(send(Buffer.alloc(10))).rejects.toThrow('socket gone');
  });
});
