// Link profiles for the lab's emulated device uplink, and the messages to the emulator. `up` is the
// device's direction (towards the relay and the broker), `down` the other way.

export type Direction = 'up' | 'down';

export type Loss =
  | { kind: 'random'; probability: number }
  /** Gilbert-Elliott: per packet, good→bad with `goodToBad`, bad→good with `badToGood`. */
  | { kind: 'gilbert'; goodToBad: number; badToGood: number; lossInGood: number; lossInBad: number }
  /**
   * Gilbert-Elliott in time: fades (the bad state) come on average every `meanGapMs` and last on average
   * `meanFadeMs` (both exponentially distributed), whether or not packets pass meanwhile.
   */
  | { kind: 'fades'; meanGapMs: number; meanFadeMs: number; lossInGood: number; lossInFade: number };

export interface LaneProfile {
  /** One-way delay. */
  delayMs: number;
  /** Uniform ± around the delay; packets stay in order. */
  jitterMs?: number;
  loss?: Loss;
  /** Serialisation rate; absent: unlimited. */
  rateKbps?: number;
  /** Drop-tail once the queue holds more than this much sending time (a bearer's buffer). */
  queueLimitMs?: number;
}

export interface LinkProfile {
  name: string;
  up: LaneProfile;
  down: LaneProfile;
}

export interface LaneStats {
  packets: number;
  bytes: number;
  dropped: number;
  forwardedBytes: number;
}

export interface LinkStats {
  up: LaneStats;
  down: LaneStats;
}

export type ToEmulator =
  | { id: number; type: 'profile'; profile: LinkProfile }
  | { id: number; type: 'down'; down: boolean }
  | { id: number; type: 'stats' };

export type FromEmulator = { type: 'ready' } | { type: 'ok'; id: number; stats: LinkStats };

/** No shaping: the lab's plain wire. */
export const clearLink: LinkProfile = { name: 'clear', up: { delayMs: 0 }, down: { delayMs: 0 } };

/**
 * A camera on a 4G router: 60-100 ms round trip with jitter, 1 % loss each way, about 4 Mbit/s up and
 * 20 Mbit/s down.
 */
export const link4g: LinkProfile = {
  name: '4g',
  up: {
    delayMs: 40,
    jitterMs: 10,
    loss: { kind: 'random', probability: 0.01 },
    rateKbps: 4000,
    queueLimitMs: 300,
  },
  down: {
    delayMs: 35,
    jitterMs: 10,
    loss: { kind: 'random', probability: 0.01 },
    rateKbps: 20_000,
    queueLimitMs: 300,
  },
};

/**
 * A bad link: about 300 ms round trip, losses in bursts averaging about 5 %, 1 Mbit/s up. The bursts are
 * fades in time (50 ms on average, 5 % of the time), as on a radio link: at the look's 1 Mbit/s about
 * five packets each. Counted per packet instead (the per-packet 'gilbert' model, as netem's gemodel), a
 * burst on a nearly idle lane, before the look's video flows, took five packets however far apart: a
 * STUN, DTLS or TCP request and its retransmissions, backed off to 0.5, 1, 2 and 4 s, were all lost, and
 * one burst held a connectivity check or the MQTT request for 7-20 s.
 */
const burstyLoss: Loss = {
  kind: 'fades',
  meanGapMs: 950,
  meanFadeMs: 50,
  lossInGood: 0.002,
  lossInFade: 1,
};
export const linkBad: LinkProfile = {
  name: 'bad',
  up: { delayMs: 150, jitterMs: 20, loss: burstyLoss, rateKbps: 1000, queueLimitMs: 600 },
  down: { delayMs: 150, jitterMs: 20, loss: burstyLoss, rateKbps: 5000, queueLimitMs: 600 },
};
