// Which of a look's ICE servers the device hands to werift. werift 0.24.4 takes only the first stun: URL
// and the first turn: URL of its list and silently drops the rest (shinyoshiaki/werift-webrtc#710), and it
// gathers every server before the offer is complete, so a list is no fallback there, only a delay. The
// device therefore chooses, in the grant's order: the first STUN server and the first TURN server over
// UDP (`turn:` without `?transport=tcp`). TURN over TCP or TLS (`turns:`, typically on 443) is the
// console's fallback through strict firewalls; the device on its 4G or home uplink uses UDP.
import type { IceServer } from '../protocol/tokens.js';

export interface ChosenIceServers {
  /** What werift gets: at most one STUN and one TURN server. */
  servers: IceServer[];
  /** URLs left out, for the log. */
  skipped: string[];
}

const isUdpTurn = (url: string): boolean => url.startsWith('turn:') && !url.endsWith('?transport=tcp');

export function chooseIceServers(servers: readonly IceServer[]): ChosenIceServers {
  const stun = servers.find((server) => server.urls.startsWith('stun:'));
  const turn = servers.find(
    (server) => isUdpTurn(server.urls) && server.username !== undefined && server.credential !== undefined,
  );
  const chosen = servers.filter((server) => server === stun || server === turn);
  return {
    servers: chosen,
    skipped: servers.filter((server) => !chosen.includes(server)).map((server) => server.urls),
  };
}
