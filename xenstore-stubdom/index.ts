// xenstored entry point: configuration from argv and environment, then wiring.
//   --socket PATH        main (dom0) socket; default $XENSTORED_PATH, else /var/run/xenstored/socket
//   --state-dir DIR      journal and snapshot; default $XENSTORED_STATE_DIR, else /var/lib/microhv/xenstore
//   --domain-sockets DIR per-domain sockets, created on INTRODUCE
//   --tx-timeout-ms N    discard transactions left open longer (default 60000)
// Prints "xenstored ready <socket>" on stdout once it accepts connections.
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS } from './config.js';
import { Server } from './server.js';

function main(): void {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' },
      'state-dir': { type: 'string' },
      'domain-sockets': { type: 'string' },
      'tx-timeout-ms': { type: 'string' },
    },
    strict: true,
  });
  const log = (msg: string): void => {
    process.stderr.write(`xenstored: ${msg}\n`);
  };
  const server = new Server({
    socketPath: values.socket ?? process.env['XENSTORED_PATH'] ?? '/var/run/xenstored/socket',
    stateDir: values['state-dir'] ?? process.env['XENSTORED_STATE_DIR'] ?? '/var/lib/microhv/xenstore',
    domainSocketDir: values['domain-sockets'],
    limits: { ...DEFAULT_LIMITS, transactionTimeoutMs: Number(values['tx-timeout-ms'] ?? DEFAULT_LIMITS.transactionTimeoutMs) },
    log,
    onFatal: (e) => {
      // Never acknowledge what cannot be made durable: die and let the supervisor restart us.
      log(`fatal: ${e.code}: ${e.message}: ${String(e.cause)}`);
      process.exit(70);
    },
  });
  const r = server.recovery;
  log(`recovered epoch ${r.epoch}: ${r.records} journal records${r.tornTail ? ', torn tail discarded' : ''}${r.badRecords > 0 ? `, ${r.badRecords} bad records skipped` : ''}`);
  const stop = (): void => {
    server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.start().then(
    () => process.stdout.write(`xenstored ready ${values.socket ?? process.env['XENSTORED_PATH'] ?? ''}\n`),
    (e: unknown) => {
      log(`cannot listen: ${String(e)}`);
      process.exit(1);
    },
  );
}

main();
