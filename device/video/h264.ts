// Which H.264 NAL units an RTP payload carries (RFC 6184, packetization mode 1), so the RTP hop can tell
// where a keyframe begins without decoding anything: it holds and forwards from that point only, and the
// first frame a viewer gets is always a whole keyframe with its parameter sets.

const NAL_IDR = 5;
const NAL_SPS = 7;
const STAP_A = 24;
const FU_A = 28;

export interface KeyframeNals {
  /** A sequence parameter set: our encoders send one (with the PPS) right before every IDR. */
  sps: boolean;
  /** The start of an IDR slice: a whole one, or the first fragment of a fragmented one. */
  idrStart: boolean;
}

/** Pure: the keyframe-related NAL units in one RTP payload. Malformed payloads report none. */
export function keyframeNals(payload: Uint8Array): KeyframeNals {
  const result: KeyframeNals = { sps: false, idrStart: false };
  const header = payload[0];
  if (header === undefined) return result;
  const type = header & 0x1f;
  const note = (nalType: number): void => {
    if (nalType === NAL_SPS) result.sps = true;
    if (nalType === NAL_IDR) result.idrStart = true;
  };
  if (type === STAP_A) {
    // 16-bit size, then that many bytes of NAL unit, repeated.
    for (let offset = 1; offset + 2 < payload.length; ) {
      const size = ((payload[offset] ?? 0) << 8) | (payload[offset + 1] ?? 0);
      const nal = payload[offset + 2];
      if (size === 0 || nal === undefined) break;
      note(nal & 0x1f);
      offset += 2 + size;
    }
  } else if (type === FU_A) {
    const fuHeader = payload[1];
    if (fuHeader !== undefined && (fuHeader & 0x80) !== 0) note(fuHeader & 0x1f);
  } else {
    note(type);
  }
  return result;
}
