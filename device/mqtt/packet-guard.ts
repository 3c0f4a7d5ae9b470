// A client-side maximum packet size for MQTT 3.1.1, where the protocol has none (MQTT 5's Maximum
// Packet Size, §3.1.2.11.4, is sent in CONNECT and honoured by the server; 3.1.1 has no such field).
// mqtt.js hands every received byte to mqtt-packet's parser, which collects a whole packet before it
// emits it, however long the fixed header says it is: a 250 MB PUBLISH is 250 MB of memory before any
// size check. So the link watches the byte stream itself, ahead of the parser: it reads each packet's
// fixed header (spec 2.2: one byte, then the remaining length, 1-4 bytes of 7 bits) and skips the
// body by counting, holding nothing. A packet that says it is larger than the limit is reported at
// once, and the link closes the connection, as MQTT 5 has a client do.

export class PacketSizeGuard {
  readonly #maxBytes: number;
  #state: 'type' | 'length' | 'body' = 'type';
  #remaining = 0;
  #multiplier = 1;
  #lengthBytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * Feeds received bytes in order; returns the declared size of the first packet over the limit (or
   * Infinity for a length field that is not valid MQTT), else undefined. After a violation, stop.
   */
  feed(chunk: Uint8Array): number | undefined {
    let at = 0;
    while (at < chunk.length) {
      switch (this.#state) {
        case 'type':
          at += 1;
          this.#state = 'length';
          this.#remaining = 0;
          this.#multiplier = 1;
          this.#lengthBytes = 0;
          break;
        case 'length': {
          const byte = chunk[at] ?? 0;
          at += 1;
          this.#lengthBytes += 1;
          this.#remaining += (byte & 0x7f) * this.#multiplier;
          this.#multiplier *= 128;
          if (byte & 0x80) {
            if (this.#lengthBytes >= 4) return Number.POSITIVE_INFINITY;
            break;
          }
          const packetBytes = 1 + this.#lengthBytes + this.#remaining;
          if (packetBytes > this.#maxBytes) return packetBytes;
          this.#state = this.#remaining > 0 ? 'body' : 'type';
          break;
        }
        case 'body': {
          const taken = Math.min(this.#remaining, chunk.length - at);
          at += taken;
          this.#remaining -= taken;
          if (this.#remaining === 0) this.#state = 'type';
          break;
        }
      }
    }
    return undefined;
  }
}
