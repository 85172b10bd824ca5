// What the benchmark commands share: flags with BENCH_* fallbacks, the settings of interleaved rounds,
// the scratch directory and exit handling, and the report's opening, rows and writing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Pool } from 'undici';
import { createPool, type RoundResult, runRound, type Session } from './load.ts';
import { machineBusyMs, stopAll } from './processes.ts';
import { commit, pct, percentile } from './summary.ts';

export const root = resolve(import.meta.dirname, '..');

/** Exits with status 2 after printing `message`: the command line was wrong. */
export function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

/** The string flags named in `defaults`, each defaulting to BENCH_<NAME> (upper case, `-` as `_`), then to its default. */
export function flags<K extends string>(defaults: Record<K, string>): Record<K, string> {
  const options: Record<string, { type: 'string'; default: string }> = {};
  for (const [name, fallback] of Object.entries<string>(defaults)) {
    const variable = `BENCH_${name.toUpperCase().replaceAll('-', '_')}`;
    options[name] = { type: 'string', default: process.env[variable] ?? fallback };
  }
  return parseArgs({ options }).values as Record<K, string>;
}

/** The flags of a benchmark of targets in interleaved rounds; its report goes to bench/out/<report>. */
export function roundFlags(targetNames: readonly string[], report: string) {
  return flags({
    targets: targetNames.join(','),
    concurrency: '1,16,64',
    rounds: '3',
    duration: '3',
    warmup: '1',
    out: join(root, 'bench/out', report),
  });
}

export type RoundSettings<T extends string> = {
  targets: T[];
  concurrency: number[];
  rounds: number;
  durationMs: number;
  warmupMs: number;
};

/** The checked settings of `roundFlags`: exits (2) on an unknown target or a count that is not positive. */
export function roundSettings<T extends string>(
  targetNames: readonly T[],
  values: ReturnType<typeof roundFlags>,
): RoundSettings<T> {
  const requested = values.targets.split(',').map((t) => t.trim());
  for (const t of requested) {
    if (!targetNames.includes(t as T)) {
      fail(`unknown target '${t}': expected a comma-separated subset of ${targetNames.join(',')}`);
    }
  }
  const settings = {
    targets: targetNames.filter((t) => requested.includes(t)),
    concurrency: values.concurrency.split(',').map(Number),
    rounds: Number(values.rounds),
    durationMs: Number(values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
  };
  const counts = [...settings.concurrency, settings.rounds, settings.durationMs];
  if (!counts.every((n) => Number.isFinite(n) && n > 0) || !(settings.warmupMs >= 0)) {
    fail('--concurrency, --rounds and --duration must be positive numbers, --warmup zero or more');
  }
  return settings;
}

let scratch: string | undefined;

/** The benchmark's scratch directory (made on first use as <tmp>/<prefix>…, removed on exit). */
export function scratchDir(prefix: string): string {
  scratch ??= mkdtempSync(join(tmpdir(), prefix));
  return scratch;
}

function cleanup(): void {
  stopAll();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
}

/**
 * Runs `main` and exits with its code, or 1 when it throws; every launched process is stopped and the scratch
 * directory removed on the way out, also on SIGINT and SIGTERM (exit code 130).
 */
export function runBenchmark(main: () => Promise<number>): void {
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  main().then(
    (code) => {
      cleanup();
      process.exit(code);
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      cleanup();
      process.exit(1);
    },
  );
}

/** `run`'s value with the CPU milliseconds this process (the load generator) and the whole machine spent on it. */
export async function loadCpu<T>(
  run: () => Promise<T>,
): Promise<{ value: T; loadMs: number; machineMs: number }> {
  const load0 = process.cpuUsage();
  const machine0 = machineBusyMs();
  const value = await run();
  const machineMs = machineBusyMs() - machine0;
  const load = process.cpuUsage(load0);
  return { value, loadMs: (load.user + load.system) / 1000, machineMs };
}

/** One measured round of one target, with the CPU each party spent during it. */
export type Round = RoundResult & {
  relayCpuMs: number;
  upstreamCpuMs: number;
  loadCpuMs: number;
  otherCpuMs: number;
};

type TimedRound = { calls: number; errors: number; elapsedMs: number; latenciesMs: number[] };

/** Throughput (overall and per round), latency percentiles and counts of `rounds`. */
export function throughput(rounds: TimedRound[]) {
  const total = (f: (r: TimedRound) => number) => rounds.reduce((n, r) => n + f(r), 0);
  const calls = total((r) => r.calls);
  const elapsedMs = total((r) => r.elapsedMs);
  const roundRps = rounds.map((r) => (r.calls * 1000) / r.elapsedMs);
  const sorted = Float64Array.from(rounds.flatMap((r) => r.latenciesMs)).sort();
  return {
    rps: (calls * 1000) / elapsedMs,
    minRps: Math.min(...roundRps),
    maxRps: Math.max(...roundRps),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    calls,
    elapsedMs,
    errors: total((r) => r.errors),
  };
}

function summarise(rounds: Round[]) {
  const total = (f: (r: Round) => number) => rounds.reduce((n, r) => n + f(r), 0);
  const t = throughput(rounds);
  return {
    ...t,
    relayCpu: total((r) => r.relayCpuMs) / t.calls,
    upstreamCpu: total((r) => r.upstreamCpuMs) / t.calls,
    loadCpu: total((r) => r.loadCpuMs) / t.calls,
    /** Share of the machine's cores busy with anything else (other processes, the kernel's softirqs). */
    otherShare: total((r) => r.otherCpuMs) / (t.elapsedMs * cpus().length),
  };
}
export type Summary = ReturnType<typeof summarise>;

/**
 * For each concurrency: a warm-up round of every target (`warmed` sees each), then `settings.rounds` rounds of
 * every target in turn, measured by `measureRound`. The summaries are keyed `<target>@<concurrency>`.
 */
export async function measureInterleaved<T extends { name: string; session: Session }>(
  targets: T[],
  settings: RoundSettings<string>,
  measureRound: (t: T, pool: Pool, concurrency: number) => Promise<Round>,
  warmed: (t: T, concurrency: number, warm: RoundResult) => void = () => {},
): Promise<Map<string, Summary>> {
  const results = new Map<string, Summary>();
  for (const c of settings.concurrency) {
    const pools = new Map<string, Pool>(targets.map((t) => [t.name, createPool(t.session, c)]));
    const rounds = new Map<string, Round[]>(targets.map((t) => [t.name, []]));
    for (const t of targets)
      warmed(t, c, await runRound(pools.get(t.name)!, t.session, c, settings.warmupMs));
    for (let i = 1; i <= settings.rounds; i++) {
      for (const t of targets) {
        const round = await measureRound(t, pools.get(t.name)!, c);
        rounds.get(t.name)!.push(round);
        console.error(
          `c=${c} round ${i}/${settings.rounds} ${t.name}: ${((round.calls * 1000) / round.elapsedMs).toFixed(0)} req/s, ` +
            `${round.errors} errors`,
        );
      }
    }
    for (const [name, list] of rounds) results.set(`${name}@${c}`, summarise(list));
    await Promise.all([...pools.values()].map((p) => p.close()));
  }
  return results;
}

/** Milliseconds with `digits` decimals, or n/a. */
export const ms = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
export const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

/** A report's title line and the command, settings, machine and commit of the run. */
export function reportHead(title: string, script: string, settings: string): string[] {
  const cpu = cpus();
  return [
    `## ${title} of ${new Date().toISOString()}`,
    '',
    `- command: \`node ${script} ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
    `- settings: ${settings}`,
    `- node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ` +
      `commit ${commit()}`,
  ];
}

/** The header of the table of `Summary` rows. */
export const ROUND_TABLE = [
  '| c | target | req/s | req/s per round | p50 ms | p99 ms | calls | errors | relay CPU ms/call | upstream CPU ms/call | load gen CPU ms/call | other CPU |',
  '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];

/** The req/s, req/s per round, p50 and p99 cells (no outer bars). */
export function rateCells(s: {
  rps: number;
  minRps: number;
  maxRps: number;
  p50: number;
  p99: number;
}): string {
  return `${s.rps.toFixed(0)} | ${s.minRps.toFixed(0)}–${s.maxRps.toFixed(0)} | ${ms(s.p50)} | ${ms(s.p99)}`;
}

/** A row of the `ROUND_TABLE`; the relay CPU is '—' without a relay. */
export function roundRow(c: number, target: string, s: Summary, relay = true): string {
  return (
    `| ${c} | ${target} | ${rateCells(s)} | ` +
    `${s.calls} | ${s.errors} | ${relay ? ms(s.relayCpu, 3) : '—'} | ${ms(s.upstreamCpu, 3)} | ${ms(s.loadCpu, 3)} | ${pct(s.otherShare)} |`
  );
}

/** The warning lines when other work used over 10% of the machine during some `what`. */
export function disturbance(otherShares: number[], what: string): string[] {
  const disturbed = Math.max(0, ...otherShares);
  if (!(disturbed > 0.1)) return [];
  return [
    '',
    `**Disturbed run**: other work used up to ${pct(disturbed)} of the machine during some ${what}; ` +
      'rerun on an idle machine before trusting these figures.',
  ];
}

/** The header of the table of checks. */
export const CHECK_TABLE = ['| check | measured | target | result |', '|---|---:|---:|---|'];

/** Prints the report and writes it to `out`. */
export function writeReport(out: string, markdown: string): void {
  console.log(`\n${markdown}`);
  mkdirSync(resolve(out, '..'), { recursive: true });
  writeFileSync(out, markdown);
  console.error(`written to ${out}`);
}
