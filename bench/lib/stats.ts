import { readFileSync, writeFileSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import { cpus, totalmem, platform, release } from 'node:os';
import { execFileSync } from 'node:child_process';

export interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Latencies in milliseconds, recorded in microseconds by an HDR histogram (3 significant digits). */
export class LatencyRecorder {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

  record(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  summary(): Latency {
    const q = (p: number) => Math.round(this.h.getValueAtPercentile(p)) / 1000;
    return { count: this.h.totalCount, p50: q(50), p90: q(90), p99: q(99), max: Math.round(this.h.maxValue) / 1000, mean: Math.round(this.h.mean) / 1000 };
  }
}

export function machineInfo(): Record<string, unknown> {
  let redis = 'unknown';
  try {
    redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().split(' ').slice(0, 3).join(' ');
  } catch {
    // not installed locally
  }
  const c = cpus();
  return { cpus: c.length, cpu: c[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30), os: `${platform()} ${release()}`, node: process.version, redis };
}

/** A single progress line on stderr, redrawn in place. */
export class Progress {
  private last = 0;
  constructor(private readonly label: string) {}

  update(text: string, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    process.stderr.write(`\r\x1b[2K[${this.label}] ${text}`);
  }

  done(text: string): void {
    process.stderr.write(`\r\x1b[2K[${this.label}] ${text}\n`);
  }
}

/** Peak resident set (VmHWM) since start or since resetPeak, in KiB. */
export function peakKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Starts a new peak from the current resident set (Linux: clear_refs 5). */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

export function rssKiB(pid: number): number {
  const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) : 0;
}
