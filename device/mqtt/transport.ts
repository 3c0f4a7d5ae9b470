// The link's MQTT client over a TCP or TLS socket of our own making, instead of `mqtt.connect`: that
// loads every transport mqtt.js knows (WebSocket with node:http, https and zlib, SOCKS with its
// address parser), about 2 MiB of the idle service's RSS for two the device never uses, and routes
// the connection through a SOCKS proxy named in the MQTTJS_SOCKS_PROXY environment variable. Only
// mqtts:// (TLS, the server checked against the configured CA) and mqtt:// (the loopback demo).
import { createRequire } from 'node:module';
import { isIP, connect as tcpConnect } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { IClientOptions, MqttClient } from 'mqtt';

// mqtt.js's client module is CommonJS with its class as `exports.default`; required, so that the
// default export means the same under Node and under the test runner's module interop.
const Client = (createRequire(import.meta.url)('mqtt/lib/client') as { default: typeof MqttClient }).default;

const defaultPorts: Record<string, number> = { 'mqtts:': 8883, 'mqtt:': 1883 };

/** Opens a client to `url` (mqtts:// or mqtt://) with `options`; connecting starts at once. */
export function connectMqtt(url: string, options: IClientOptions): MqttClient {
  const parsed = new URL(url);
  const defaultPort = defaultPorts[parsed.protocol];
  if (defaultPort === undefined) throw new Error(`${parsed.protocol} is not mqtts: or mqtt:`);
  const tls = parsed.protocol === 'mqtts:';
  // The URL keeps IPv6 literals in brackets; sockets want them bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port === '' ? defaultPort : Number(parsed.port);
  const connectOptions = { ...options, host, port, protocol: tls ? 'mqtts' : 'mqtt' } as IClientOptions;
  return new Client((client) => {
    if (!tls) return tcpConnect({ host, port });
    const secure: ConnectionOptions = {
      host,
      port,
      // Never false: the broker's certificate must chain to the configured CA.
      rejectUnauthorized: true,
    };
    if (isIP(host) === 0) secure.servername = host;
    if (options.ca !== undefined) secure.ca = options.ca;
    if (options.cert !== undefined) secure.cert = options.cert;
    if (options.key !== undefined) secure.key = options.key;
    // The last session's ticket (the link's TLS resumption): a short handshake instead of a full one.
    const session = (options as { session?: Buffer }).session;
    if (session !== undefined) secure.session = session;
    const socket = tlsConnect(secure);
    // A failed handshake is the client's error (it closes and the link retries); as mqtt.js does.
    const onError = (error: Error) => {
      client.emit('error', error);
      socket.end();
    };
    socket.on('error', onError);
    socket.once('secureConnect', () => socket.removeListener('error', onError));
    return socket;
  }, connectOptions);
}
