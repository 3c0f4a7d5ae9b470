// The MQTT topic tree: everything for one device lives under tk/<deviceId>/.
export interface TopicSpec {
  /** Topic below the device prefix. */
  suffix: string;
  direction: 'device→central' | 'central→device';
  qos: 0 | 1;
  retain: boolean;
  purpose: string;
}

export const topicSpecs = {
  status: {
    suffix: 'status',
    direction: 'device→central',
    qos: 1,
    retain: true,
    purpose: 'online/offline; offline is also the last will',
  },
  info: {
    suffix: 'info',
    direction: 'device→central',
    qos: 1,
    retain: true,
    purpose: 'firmware and hardware',
  },
  health: {
    suffix: 'health',
    direction: 'device→central',
    qos: 0,
    retain: true,
    purpose: 'periodic health',
  },
  event: {
    suffix: 'event',
    direction: 'device→central',
    qos: 1,
    retain: false,
    purpose: 'privacy toggles, schedule decisions, faults',
  },
  audit: { suffix: 'audit', direction: 'device→central', qos: 1, retain: false, purpose: 'audit records' },
  schedule: {
    suffix: 'schedule',
    direction: 'central→device',
    qos: 1,
    retain: true,
    purpose: 'the signed schedule',
  },
  update: {
    suffix: 'update',
    direction: 'central→device',
    qos: 1,
    retain: true,
    purpose: 'the signed update manifest',
  },
  viewRequest: {
    suffix: 'view/request',
    direction: 'central→device',
    qos: 1,
    retain: false,
    purpose: 'look requests with grants, hang-ups, signalling',
  },
  ack: {
    suffix: 'ack',
    direction: 'central→device',
    qos: 1,
    retain: false,
    purpose: 'acknowledgements of audit records and events, by id',
  },
  viewAnswer: {
    suffix: 'view/answer',
    direction: 'device→central',
    qos: 1,
    retain: false,
    purpose: 'decisions, session ends, signalling',
  },
} as const satisfies Record<string, TopicSpec>;

export type TopicName = keyof typeof topicSpecs;

export function topic(deviceId: string, name: TopicName): string {
  return `tk/${deviceId}/${topicSpecs[name].suffix}`;
}
