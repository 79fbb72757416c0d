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
 * The one rule for SIGTERM/SIGINT: `first` runs at the first signal; one within
 * REPEATED_SIGNAL_MS of it is the same keypress and is ignored; a later one
 * runs `again` (force the exit). The handlers stay for the life of the
 * process, so a forwarded signal never meets the default handler while the
 * process is finishing.
 */
export function onStopSignal(first: (signal: string) => void, again: (signal: string) => void): void {
  let stoppingAt: number | undefined;
  const stop = (signal: string) => {
    if (stoppingAt === undefined) {
      stoppingAt = Date.now();
      first(signal);
    } else if (Date.now() - stoppingAt >= REPEATED_SIGNAL_MS) again(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * Graceful shutdown shared by the server's and the agent's mains and npm start: on the first
 * SIGTERM/SIGINT close everything and exit 0; if closing takes longer than
 * `timeoutMs`, or a second signal arrives, exit 1 so an orchestrator is never stuck.
 */
export function runUntilSignal(close: () => Promise<void>, timeoutMs: number, log: ShutdownLog): void {
  onStopSignal((signal) => {
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
  }, (signal) => {
    log.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  });
}
