// MQTT: the device's connection to the central broker.
export { type LinkDeps, type LinkEvents, MqttLink } from './link.js';
