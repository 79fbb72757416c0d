import cliProgress from 'cli-progress';
import type { CliContext } from './context.js';

/** A progress bar on a terminal (count, rate, ETA); nothing when stderr is a pipe or a file. */
export interface Progress {
  update(done: number, payload: { count: number }): void;
  stop(): void;
}

export function progressBar(c: CliContext, what: string, total: number, unit: string): Progress {
  if (!c.interactive || total <= 0) return { update: () => {}, stop: () => {} };
  const started = Date.now();
  const bar = new cliProgress.SingleBar({
    stream: c.err as NodeJS.WriteStream,
    format: `${what} |{bar}| {percentage}% | {count} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
    hideCursor: true,
    etaBuffer: 50,
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { count: 0, rate: 0 });
  return {
    update(done, payload) {
      const s = (Date.now() - started) / 1000;
      bar.update(Math.min(done, total), { count: payload.count.toLocaleString('en-US'), rate: Math.round(payload.count / Math.max(s, 0.001)).toLocaleString('en-US') });
    },
    stop() {
      bar.stop();
    },
  };
}
