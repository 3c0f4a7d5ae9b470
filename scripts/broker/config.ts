// The broker set-up we ship (docs/mosquitto/), as data: the identities that are not devices, the
// packet size limit, and the acl_file text derived from device/protocol/topics.ts. The dev stack's
// broker (scripts/devstack/broker.ts) runs exactly this; `npm run broker-config` writes the ACL for a
// site (scripts/broker/generate.ts), and a test checks that docs/mosquitto/ matches it.
import { topicSpecs } from '../../device/protocol/index.js';

/** Identities of services, never device ids: `central` reads and writes everything, `ops` only reads. */
export const serviceIdentities = ['central', 'ops'] as const;
export type ServiceIdentity = (typeof serviceIdentities)[number];

/**
 * An operator console's own identity: the CN of its client certificate on the TLS listener, or its
 * login on the WebSocket listener. Every console has one, so the broker (and the audit) can tell two
 * consoles apart; there is no shared console account.
 */
export type ConsoleIdentity = `console-${string}`;

/** `console-` and 1–54 of `a-z`, `0-9`, `-`: still a valid certificate CN and within a device id's 63. */
export const consoleIdentityPattern = /^console-[a-z0-9][a-z0-9-]{0,53}$/;

/** The consoles of the shipped example ACL (docs/mosquitto/acl.conf) and of the dev stack's broker. */
export const exampleConsoles: readonly ConsoleIdentity[] = ['console-1', 'console-2'];

export function isConsoleIdentity(name: string): name is ConsoleIdentity {
  return consoleIdentityPattern.test(name);
}

/** Checks a list of console identities: each well-formed, none twice. Throws with the offending name. */
export function consoleIdentities(names: readonly string[]): ConsoleIdentity[] {
  const seen = new Set<string>();
  for (const name of names) {
    if (!isConsoleIdentity(name)) {
      throw new Error(`console identity ${JSON.stringify(name)} must match ${consoleIdentityPattern.source}`);
    }
    if (seen.has(name)) throw new Error(`console identity ${name} given twice`);
    seen.add(name);
  }
  return [...seen] as ConsoleIdentity[];
}

/**
 * mosquitto's `max_packet_size` (bytes of a whole MQTT packet; a client that sends a larger one is
 * disconnected). The largest packet the protocol needs is an audit or event record from the device:
 * the outbox stores and sends a record whole, up to 65 536 bytes (device/outbox/outbox.ts,
 * maxRecordBytes), plus the topic (tk/<63-character id>/audit, 74 bytes with its length) and the MQTT
 * header (at most 7 bytes). Everything else is far smaller: the device drops inbound payloads over
 * 16 KiB (limits.maxMessageBytes), an SDP answer is at most 12 000 characters. So 64 KiB + 1 KiB:
 * a limit at exactly 64 KiB could refuse the outbox's largest record for ever, and the device would
 * reconnect and resend it in a loop. Raise it only with limits.maxMessageBytes above 64 KiB. The
 * device enforces the same limit on what it receives, from the packet's header before buffering it
 * (device/mqtt/link.ts, maxPacketBytes; test/mqtt/packet-guard.test.ts checks the two agree).
 */
export const maxPacketSizeBytes = 66_560;

/**
 * The broker's acl_file for the protocol's topic tree (mosquitto 2.0 syntax), with one `user` block
 * per console. A device's username is the CN of its client certificate, which is its device id;
 * patterns with %u confine it to tk/<id>/. Derived from `topicSpecs`, so a new topic gets the right
 * access here and in the docs.
 */
export function mosquittoAcl(consoles: readonly string[] = exampleConsoles): string {
  const names = consoleIdentities(consoles);
  const specs = Object.values(topicSpecs);
  const suffix = (name: keyof typeof topicSpecs): string => topicSpecs[name].suffix;
  const deviceLines = [
    ...specs
      .filter((s) => s.direction === 'device→central')
      .map((s) => `pattern readwrite tk/%u/${s.suffix}`),
    ...specs.filter((s) => s.direction === 'central→device').map((s) => `pattern read tk/%u/${s.suffix}`),
  ];
  const consoleBlocks = names.flatMap((name) => [
    `user ${name}`,
    `topic deny tk/${name}/#`,
    `topic write tk/+/${suffix('viewRequest')}`,
    `topic read tk/+/${suffix('viewAnswer')}`,
    `topic read tk/+/${suffix('status')}`,
    '',
  ]);
  return [
    '# trygghetskamera: mosquitto 2.0 acl_file for the topic tree tk/<deviceId>/...',
    '# Generated from device/protocol/topics.ts by scripts/broker/config.ts; do not edit. For a site:',
    '#   npm run broker-config -- --out /etc/mosquitto/acl.conf console-<name> [console-<name> ...]',
    '#',
    '# Usernames: a device authenticates with its client certificate and its CN (= device id,',
    '# ^[a-z0-9][a-z0-9-]{2,62}$) becomes the username (use_identity_as_username true). The names',
    '# central and ops, and every name starting with console-, are not devices and must never be',
    '# issued as device ids. The username is also the client id (use_username_as_clientid true),',
    '# so no login can take over the session of another identity.',
    '# Anonymous clients get nothing: there are no topic lines before the first user line.',
    '',
    '# The central service reads and writes the whole tree.',
    'user central',
    'topic readwrite tk/#',
    '',
    '# Operations staff read everything and write nothing. The deny line stops the device patterns',
    '# below from granting ops its own tk/ops/ subtree (user lines are checked before patterns).',
    'user ops',
    'topic deny tk/ops/#',
    'topic read tk/#',
    '',
    '# Operator consoles, one identity each (certificate CN, or a password login on the WebSocket',
    '# listener): ask to look, hear the answers and the status of the devices; nothing else.',
    ...consoleBlocks,
    '# Each device: writes (and reads back) what it publishes, reads what is sent to it, nothing else.',
    ...deviceLines,
    '',
  ].join('\n');
}
