// Name-based ids (RFC 9562 UUID version 5): the same name always gives the same id, so a record that
// may be made again after a crash (a missed window found twice) is deduplicated by the receiver.
import { createHash } from 'node:crypto';

/** A fixed namespace for this firmware's audit records (itself a random v4 UUID). */
const namespace = Buffer.from('5f0c7a9e3b2d4c1e8a6f9d0b2e4c6a81', 'hex');

export function nameUuid(name: string): string {
  const hash = createHash('sha1').update(namespace).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
