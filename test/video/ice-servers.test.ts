// Which of a look's ICE servers werift gets: werift 0.24.4 uses only the first STUN and the first TURN
// URL, so the device picks them itself, preferring TURN over UDP and leaving TCP/TLS to the console.
import { describe, expect, it } from 'vitest';
import { chooseIceServers } from '../../device/video/index.js';

const credentials = { username: '1773181080:ses-1', credential: 'Y3JlZA==' };

describe('chooseIceServers', () => {
  it('keeps the first STUN server and the first TURN server over UDP, in the given order', () => {
    const chosen = chooseIceServers([
      { urls: 'turns:turn.example.se:443?transport=tcp', ...credentials },
      { urls: 'turn:turn.example.se:3478?transport=tcp', ...credentials },
      { urls: 'stun:stun.example.se:3478' },
      { urls: 'turn:turn.example.se:3478?transport=udp', ...credentials },
      { urls: 'turn:backup.example.se:3478', ...credentials },
      { urls: 'stun:stun2.example.se' },
    ]);
    expect(chosen.servers.map((server) => server.urls)).toEqual([
      'stun:stun.example.se:3478',
      'turn:turn.example.se:3478?transport=udp',
    ]);
    expect(chosen.skipped).toEqual([
      'turns:turn.example.se:443?transport=tcp',
      'turn:turn.example.se:3478?transport=tcp',
      'turn:backup.example.se:3478',
      'stun:stun2.example.se',
    ]);
  });

  it('takes a turn: URL without a transport as UDP, and gives nothing for only TLS servers', () => {
    expect(chooseIceServers([{ urls: 'turn:192.0.2.1', ...credentials }]).servers).toHaveLength(1);
    expect(chooseIceServers([{ urls: 'turns:192.0.2.1:443', ...credentials }]).servers).toEqual([]);
  });
});
