// The lab's link emulator: a process inside the "wire" namespace between the device's NAT and the public
// network, standing in for `tc netem` (this kernel has no sch_netem: CONFIG_NET_SCH_NETEM is not set).
// It owns two TUN devices, one per direction; policy routing in the wire namespace sends every packet
// from the device side into `up` and every packet from the public side into `down`. The emulator reads
// a packet, decides (loss, rate, delay, jitter), and writes it back into the same TUN device, where the
// kernel receives it and routes it on. Packets leave in the order they came (jitter never reorders, as
// on a 4G bearer). Controlled over the IPC channel (link.ts is the parent's side).
//   ip netns exec <wire> node --import tsx scripts/netlab/link-emulator.ts tunup tundown [seed]
//   (forked with an IPC channel)
import { closeSync, read, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Direction, LinkProfile, LinkStats, Loss, ToEmulator } from './link-profile.js';

type Koffi = typeof import('koffi');
const koffi = createRequire(import.meta.url)('koffi') as Koffi;
const libc = koffi.load('libc.so.6');
const openFile = libc.func('int open(const char *path, int flags)');
const ioctl = libc.func('int ioctl(int fd, unsigned long request, void *arg)');

const O_RDWR = 2;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;

function openTun(name: string): number {
  const fd = openFile('/dev/net/tun', O_RDWR) as number;
  if (fd < 0) throw new Error('cannot open /dev/net/tun');
  // struct ifreq: char ifr_name[16]; short ifr_flags; (padded to 40 bytes)
  const ifreq = Buffer.alloc(40);
  ifreq.write(name, 0, 15, 'ascii');
  ifreq.writeUInt16LE(IFF_TUN | IFF_NO_PI, 16);
  if ((ioctl(fd, TUNSETIFF, ifreq) as number) < 0) throw new Error(`TUNSETIFF ${name} failed`);
  return fd;
}

/** mulberry32: a small seeded PRNG, so a profile's losses are the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Lane {
  #profile: LinkProfile['up'] = { delayMs: 0 };
  down = false;
  readonly stats: LinkStats['up'] = { packets: 0, bytes: 0, dropped: 0, forwardedBytes: 0 };
  readonly #queue: Array<{ at: number; packet: Buffer }> = [];
  #timer: NodeJS.Timeout | undefined;
  #lastDepartureMs = 0;
  #lastArrivalMs = 0;
  #bad = false;
  /** For 'fades': when the current state ends (ms, performance.now()). */
  #stateEndsAtMs: number | undefined;
  readonly #random: () => number;

  constructor(
    readonly fd: number,
    seed: number,
  ) {
    this.#random = prng(seed);
  }

  /** A new profile starts in the good state. */
  setProfile(profile: LinkProfile['up']): void {
    this.#profile = profile;
    this.#bad = false;
    this.#stateEndsAtMs = undefined;
  }

  #lost(): boolean {
    const loss = this.#profile.loss;
    if (loss === undefined) return false;
    if (loss.kind === 'random') return this.#random() < loss.probability;
    if (loss.kind === 'fades') return this.#lostInFade(loss);
    // Gilbert-Elliott: a good and a bad state, moved between per packet; loss mostly in the bad one.
    if (this.#bad && this.#random() < loss.badToGood) this.#bad = false;
    else if (!this.#bad && this.#random() < loss.goodToBad) this.#bad = true;
    return this.#random() < (this.#bad ? loss.lossInBad : loss.lossInGood);
  }

  /** Gilbert-Elliott in time: the states' durations are drawn, exponentially distributed, as time passes. */
  #lostInFade(loss: Extract<Loss, { kind: 'fades' }>): boolean {
    const nowMs = performance.now();
    const duration = (meanMs: number) => -meanMs * Math.log(1 - this.#random());
    this.#stateEndsAtMs ??= nowMs + duration(loss.meanGapMs);
    while (this.#stateEndsAtMs <= nowMs) {
      this.#bad = !this.#bad;
      this.#stateEndsAtMs += duration(this.#bad ? loss.meanFadeMs : loss.meanGapMs);
    }
    return this.#random() < (this.#bad ? loss.lossInFade : loss.lossInGood);
  }

  push(packet: Buffer): void {
    this.stats.packets += 1;
    this.stats.bytes += packet.length;
    if (this.down || this.#lost()) {
      this.stats.dropped += 1;
      return;
    }
    const nowMs = performance.now();
    const { rateKbps, delayMs, jitterMs = 0, queueLimitMs = 500 } = this.#profile;
    let departureMs = nowMs;
    if (rateKbps !== undefined) {
      departureMs = Math.max(nowMs, this.#lastDepartureMs) + (packet.length * 8) / rateKbps;
      if (departureMs - nowMs > queueLimitMs) {
        this.stats.dropped += 1;
        return;
      }
      this.#lastDepartureMs = departureMs;
    }
    const jitter = jitterMs === 0 ? 0 : (this.#random() * 2 - 1) * jitterMs;
    // In order: a packet never arrives before the one ahead of it.
    const arrivalMs = Math.max(departureMs + Math.max(0, delayMs + jitter), this.#lastArrivalMs);
    this.#lastArrivalMs = arrivalMs;
    this.#queue.push({ at: arrivalMs, packet });
    if (this.#queue.length === 1) this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    const head = this.#queue[0];
    if (head === undefined) return;
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, head.at - performance.now()));
  }

  #flush(): void {
    const nowMs = performance.now();
    while (this.#queue.length > 0 && (this.#queue[0]?.at ?? Number.POSITIVE_INFINITY) <= nowMs + 0.5) {
      const { packet } = this.#queue.shift()!;
      try {
        writeSync(this.fd, packet);
        this.stats.forwardedBytes += packet.length;
      } catch {
        this.stats.dropped += 1;
      }
    }
    this.#schedule();
  }

  /** Drops what is queued (a link that goes down loses what was in flight). */
  clear(): void {
    this.stats.dropped += this.#queue.length;
    this.#queue.length = 0;
    clearTimeout(this.#timer);
  }
}

function readLoop(lane: Lane): void {
  const buffer = Buffer.alloc(65_536);
  const next = (): void => {
    read(lane.fd, buffer, 0, buffer.length, null, (error, bytes) => {
      if (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') setTimeout(next, 1);
        return;
      }
      if (bytes > 0) lane.push(Buffer.from(buffer.subarray(0, bytes)));
      next();
    });
  };
  next();
}

function main(): void {
  const [upName = 'tunup', downName = 'tundown', seedText = '0'] = process.argv.slice(2);
  const seed = Number(seedText);
  if (process.send === undefined) throw new Error('link-emulator: start with an IPC channel');
  const lanes: Record<Direction, Lane> = {
    up: new Lane(openTun(upName), 2 * seed + 1),
    down: new Lane(openTun(downName), 2 * seed + 2),
  };
  process.on('message', (message: ToEmulator) => {
    switch (message.type) {
      case 'profile':
        lanes.up.setProfile(message.profile.up);
        lanes.down.setProfile(message.profile.down);
        break;
      case 'down':
        for (const lane of Object.values(lanes)) {
          lane.down = message.down;
          if (message.down) lane.clear();
        }
        break;
      case 'stats':
        break;
    }
    process.send?.({ type: 'ok', id: message.id, stats: { up: lanes.up.stats, down: lanes.down.stats } });
  });
  readLoop(lanes.up);
  readLoop(lanes.down);
  // The threads blocked in read() would keep the process alive: exit with the parent.
  process.once('disconnect', () => {
    for (const lane of Object.values(lanes)) closeSync(lane.fd);
    process.exit(0);
  });
  process.send({ type: 'ready' });
}

main();
