#!/usr/bin/env node
// Entry point of `trygghetskamera-provision`: the technician's tool (see docs/technician.md).
import { runCli } from './commands.js';

const code = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  terminal: Boolean(process.stdout.isTTY),
});
// Ends explicitly: a closed readline or a finished MQTT client must not keep the tool hanging.
process.exitCode = code;
process.stdin.destroy();
