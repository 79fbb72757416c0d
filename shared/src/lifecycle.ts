/** What shutdown logs through (a pino or Fastify logger). */
interface ShutdownLog {
  info(o: object, msg?: string): void;
  info(msg: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/**
 * A signal this soon after the first is the same keypress: Ctrl-C reaches every
 * process of the terminal's foreground group, and `npm start` forwards it to
 * its child as well. Only a later one means "stop now".
 */
export const REPEATED_SIGNAL_MS = 1000;

/**
 * Graceful shutdown shared by the server's and the agent's mains and npm start: on the first
 * SIGTERM/SIGINT close everything and exit 0; if closing takes longer than
 * `timeoutMs`, or a second signal arrives, exit 1 so an orchestrator is never stuck.
 */
export function runUntilSignal(close: () => Promise<void>, timeoutMs: number, log: ShutdownLog): void {
  let stoppingAt: number | undefined;
  const stop = (signal: string) => {
    if (stoppingAt !== undefined) {
      if (Date.now() - stoppingAt < REPEATED_SIGNAL_MS) return;
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stoppingAt = Date.now();
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
