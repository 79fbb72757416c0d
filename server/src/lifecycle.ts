import type { FastifyBaseLogger } from 'fastify';

/**
 * Graceful shutdown shared by the server and agent mains: on the first
 * SIGTERM/SIGINT close everything and exit 0; if closing takes longer than
 * `timeoutMs`, or a second signal arrives, exit 1 so an orchestrator is never stuck.
 */
export function runUntilSignal(close: () => Promise<void>, timeoutMs: number, log: FastifyBaseLogger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    close().then(
      () => {
        log.info('shut down cleanly');
        process.exit(0);
      },
      (e: Error) => {
        log.error({ err: e.message }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
