// What the benchmarks' reports share: nearest-rank percentiles, percentages, and the commit measured.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

/** Nearest-rank percentile of ascending `sorted`; NaN when it is empty. */
export function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

export function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** `git describe --always --dirty` of the checkout, or 'unknown'. */
export function commit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
