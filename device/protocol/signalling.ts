// WebRTC signalling on the view topics. The device makes the offer (so the codec stays under its
// control: werift negotiates on mime type only); the operator's console answers and both sides trickle
// ICE candidates. Every message names the session (the grant's `sid`); the device ignores signalling
// for any session but the one running. Sizes are bounded so a hostile payload stays cheap to reject.
import { z } from 'zod';
import { shortId, version } from './common.js';

const sessionId = shortId.describe("the session: the grant's sid");
/** A loopback offer is about 1 KB and a browser's answer 2–4 KB; 12 000 leaves room inside 16 KiB. */
const sdp = z.string().min(10).max(12_000).describe('SDP text (RFC 8866)');

/** One ICE candidate as `RTCIceCandidate.toJSON()` gives it. An empty `candidate` ends the trickle. */
export const IceCandidate = z
  .object({
    candidate: z.string().max(1024).describe('the a=candidate attribute value without "a="; may be empty'),
    sdpMid: z.string().max(64).nullable().optional(),
    sdpMLineIndex: z.number().int().min(0).max(255).nullable().optional(),
    usernameFragment: z.string().max(256).nullable().optional(),
  })
  .strict();
export type IceCandidate = z.infer<typeof IceCandidate>;

/** tk/<id>/view/answer (device → operator): the device's SDP offer for a granted session. */
export const SignalOffer = z
  .object({
    schemaVersion: version,
    type: z.literal('offer'),
    sessionId,
    requestId: shortId.describe('the requestId of the request that was granted'),
    sdp,
  })
  .strict();
export type SignalOffer = z.infer<typeof SignalOffer>;

/** tk/<id>/view/request (operator → device): the console's SDP answer to the offer. */
export const SignalAnswer = z
  .object({ schemaVersion: version, type: z.literal('answer'), sessionId, sdp })
  .strict();
export type SignalAnswer = z.infer<typeof SignalAnswer>;

/** Both directions: a trickled ICE candidate (view/request from the operator, view/answer from the device). */
export const SignalCandidate = z
  .object({ schemaVersion: version, type: z.literal('candidate'), sessionId, candidate: IceCandidate })
  .strict();
export type SignalCandidate = z.infer<typeof SignalCandidate>;

/** Signalling the device receives. */
export type SignalInbound = SignalAnswer | SignalCandidate;
/** Signalling the device sends. */
export type SignalOutbound = SignalOffer | SignalCandidate;
