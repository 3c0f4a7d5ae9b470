// A TCP proxy on loopback that counts the bytes of each connection in both directions and can cut every
// connection at once (a network drop, for the client; the server sees its peer vanish). Used to measure
// what an MQTT reconnect costs (scripts/bench/mqtt-reconnect.ts) and to test TLS session resumption.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ProxiedConnection {
  /** Client → server bytes. */
  up: number;
  /** Server → client bytes. */
  down: number;
}

export interface CountingProxy {
  port: number;
  /** Every connection so far, in order. */
  readonly connections: readonly ProxiedConnection[];
  /** Destroys every open connection. */
  cut(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  const connections: ProxiedConnection[] = [];
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const counts: ProxiedConnection = { up: 0, down: 0 };
    connections.push(counts);
    const upstream = createConnection(target);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('data', (chunk: Buffer) => {
      counts.up += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      counts.down += chunk.length;
      client.write(chunk);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    connections,
    cut() {
      for (const socket of open) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
