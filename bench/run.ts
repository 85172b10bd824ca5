// The overhead benchmark (`npm run bench`): tools/call through nothing (direct), through the barest Node
// relay (floor) and through Gatehouse, in interleaved rounds on 127.0.0.1. See bench/README.md.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Pool } from 'undici';
import { createPool, openSession, type RoundResult, runRound, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch as launchNode, machineBusyMs, stopAll } from './processes.ts';
import { commit, pct, percentile } from './summary.ts';

const TARGET_NAMES = ['direct', 'floor', 'gateway'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const root = resolve(import.meta.dirname, '..');
const env = process.env;
const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: env.BENCH_TARGETS ?? TARGET_NAMES.join(',') },
    concurrency: { type: 'string', default: env.BENCH_CONCURRENCY ?? '1,16,64' },
    rounds: { type: 'string', default: env.BENCH_ROUNDS ?? '3' },
    duration: { type: 'string', default: env.BENCH_DURATION ?? '3' },
    warmup: { type: 'string', default: env.BENCH_WARMUP ?? '1' },
    out: { type: 'string', default: env.BENCH_OUT ?? join(root, 'bench/out/latest.md') },
  },
});

const requested = values.targets.split(',').map((t) => t.trim());
for (const t of requested) {
  if (!TARGET_NAMES.includes(t as TargetName)) {
    console.error(`unknown target '${t}': expected a comma-separated subset of ${TARGET_NAMES.join(',')}`);
    process.exit(2);
  }
}
const settings = {
  targets: TARGET_NAMES.filter((t) => requested.includes(t)),
  concurrency: values.concurrency.split(',').map(Number),
  rounds: Number(values.rounds),
  durationMs: Number(values.duration) * 1000,
  warmupMs: Number(values.warmup) * 1000,
};
const counts = [...settings.concurrency, settings.rounds, settings.durationMs];
if (!counts.every((n) => Number.isFinite(n) && n > 0) || !(settings.warmupMs >= 0)) {
  console.error('--concurrency, --rounds and --duration must be positive numbers, --warmup zero or more');
  process.exit(2);
}
const STARTUP_TIMEOUT_MS = 20_000;

type Target = { name: TargetName; session: Session; relay: Child | undefined };
/** One measured round of one target, with the CPU each party spent during it. */
type Round = RoundResult & {
  relayCpuMs: number;
  upstreamCpuMs: number;
  loadCpuMs: number;
  otherCpuMs: number;
};

let tmp: string | undefined;
function cleanup(): void {
  stopAll();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

/** Starts `node <args(port)>` on a free port and waits until it accepts connections. */
async function launch(name: string, args: (port: number) => string[]): Promise<{ child: Child; url: URL }> {
  const { child, port } = await launchNode(name, args, root, STARTUP_TIMEOUT_MS);
  return { child, url: new URL(`http://127.0.0.1:${port}/mcp`) };
}

function gatewayConfig(upstreamUrl: URL, port: number): string {
  tmp ??= mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const file = join(tmp, 'gatehouse.yaml');
  writeFileSync(
    file,
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      'log: { level: warn }',
      'upstreams:',
      `  bench: { type: streamable-http, url: ${upstreamUrl.href} }`,
      'routes:',
      '  - path: /mcp',
      '    upstreams: [bench]',
      '    tools: { prefix: never }',
      '',
    ].join('\n'),
  );
  return file;
}

async function startTargets(upstream: { child: Child; url: URL }, failures: string[]): Promise<Target[]> {
  const targets: Target[] = [];
  for (const name of settings.targets) {
    try {
      let url = upstream.url;
      let relay: Child | undefined;
      if (name === 'floor') {
        ({ child: relay, url } = await launch('floor', (port) => [
          'bench/floor.ts',
          '--port',
          String(port),
          '--upstream',
          upstream.url.href,
        ]));
      } else if (name === 'gateway') {
        ({ child: relay, url } = await launch('gateway', (port) => [
          'src/cli/main.ts',
          'serve',
          '-c',
          gatewayConfig(upstream.url, port),
        ]));
      }
      targets.push({ name, session: await openSession(url), relay });
    } catch (err) {
      const message = `${name}: FAILED to start or open a session — ${(err as Error).message}`;
      console.error(`\n${message}\n`);
      failures.push(message.split('\n')[0]!);
    }
  }
  return targets;
}

async function measureRound(t: Target, pool: Pool, concurrency: number, upstream: Child): Promise<Round> {
  const relay0 = t.relay ? cpuTimeMs(t.relay.pid) : 0;
  const upstream0 = cpuTimeMs(upstream.pid);
  const load0 = process.cpuUsage();
  const machine0 = machineBusyMs();
  const result = await runRound(pool, t.session, concurrency, settings.durationMs);
  const machineCpuMs = machineBusyMs() - machine0;
  const load = process.cpuUsage(load0);
  const relayCpuMs = t.relay ? cpuTimeMs(t.relay.pid) - relay0 : 0;
  const upstreamCpuMs = cpuTimeMs(upstream.pid) - upstream0;
  const loadCpuMs = (load.user + load.system) / 1000;
  const otherCpuMs = Math.max(0, machineCpuMs - relayCpuMs - upstreamCpuMs - loadCpuMs);
  return { ...result, relayCpuMs, upstreamCpuMs, loadCpuMs, otherCpuMs };
}

function summarise(rounds: Round[]) {
  const total = (f: (r: Round) => number) => rounds.reduce((n, r) => n + f(r), 0);
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
    errors: total((r) => r.errors),
    relayCpu: total((r) => r.relayCpuMs) / calls,
    upstreamCpu: total((r) => r.upstreamCpuMs) / calls,
    loadCpu: total((r) => r.loadCpuMs) / calls,
    /** Share of the machine's cores busy with anything else (other processes, the kernel's softirqs). */
    otherShare: total((r) => r.otherCpuMs) / (elapsedMs * cpus().length),
  };
}
type Summary = ReturnType<typeof summarise>;

async function measure(targets: Target[], upstream: Child): Promise<Map<string, Summary>> {
  const results = new Map<string, Summary>();
  for (const c of settings.concurrency) {
    const pools = new Map<TargetName, Pool>(targets.map((t) => [t.name, createPool(t.session, c)]));
    const rounds = new Map<TargetName, Round[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) await runRound(pools.get(t.name)!, t.session, c, settings.warmupMs);
    for (let i = 1; i <= settings.rounds; i++) {
      for (const t of targets) {
        const round = await measureRound(t, pools.get(t.name)!, c, upstream);
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

function report(results: Map<string, Summary>, targets: Target[], failures: string[]): string {
  const cpu = cpus();
  const ms = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
  const lines = [
    `## Run of ${new Date().toISOString()}`,
    '',
    `- command: \`node bench/run.ts ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
    `- settings: targets ${targets.map((t) => t.name).join(', ')}; concurrency ${settings.concurrency.join(', ')}; ` +
      `${settings.rounds} interleaved rounds × ${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up per target`,
    `- node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ` +
      `commit ${commit()}`,
    ...failures.map((f) => `- **${f}**`),
    '',
    '| c | target | req/s | req/s per round | p50 ms | p99 ms | calls | errors | relay CPU ms/call | upstream CPU ms/call | load gen CPU ms/call | other CPU |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of settings.concurrency) {
    for (const t of targets) {
      const s = results.get(`${t.name}@${c}`)!;
      lines.push(
        `| ${c} | ${t.name} | ${s.rps.toFixed(0)} | ${s.minRps.toFixed(0)}–${s.maxRps.toFixed(0)} | ${ms(s.p50)} | ${ms(s.p99)} | ` +
          `${s.calls} | ${s.errors} | ${t.relay ? ms(s.relayCpu, 3) : '—'} | ${ms(s.upstreamCpu, 3)} | ${ms(s.loadCpu, 3)} | ${pct(s.otherShare)} |`,
      );
    }
  }
  const disturbed = Math.max(...[...results.values()].map((s) => s.otherShare));
  if (disturbed > 0.1) {
    lines.push(
      '',
      `**Disturbed run**: other work used up to ${pct(disturbed)} of the machine during some rounds; ` +
        'rerun on an idle machine before trusting these figures.',
    );
  }

  const get = (name: TargetName, c: number) => results.get(`${name}@${c}`);
  const floor16 = get('floor', 16);
  const direct16 = get('direct', 16);
  lines.push('', '| check | measured | target | result |', '|---|---:|---:|---|');
  if (floor16 && direct16) {
    lines.push(
      `| floor / direct throughput at c16 (orientation) | ${pct(floor16.rps / direct16.rps)} | — | — |`,
    );
  }
  const gate16 = get('gateway', 16);
  const floor1 = get('floor', 1);
  const gate1 = get('gateway', 1);
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const na = '| n/a (needs floor and gateway at this concurrency) |';
  lines.push(
    gate16 && floor16
      ? `| gateway / floor throughput at c16 | ${pct(gate16.rps / floor16.rps)} | ≥ 75% | ${verdict(gate16.rps / floor16.rps >= 0.75)} |`
      : `| gateway / floor throughput at c16 | — | ≥ 75% ${na}`,
    gate16 && floor16
      ? `| gateway / floor CPU per call at c16 | ${(gate16.relayCpu / floor16.relayCpu).toFixed(2)}× | ≤ 1.5× | ${verdict(gate16.relayCpu / floor16.relayCpu <= 1.5)} |`
      : `| gateway / floor CPU per call at c16 | — | ≤ 1.5× ${na}`,
    gate1 && floor1
      ? `| gateway p50 − floor p50 at c1 | ${ms(gate1.p50 - floor1.p50)} ms | ≤ 0.5 ms | ${verdict(gate1.p50 - floor1.p50 <= 0.5)} |`
      : `| gateway p50 − floor p50 at c1 | — | ≤ 0.5 ms ${na}`,
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const failures: string[] = [];
  const upstream = await launch('upstream', (port) => ['bench/upstream.ts', '--port', String(port)]);
  const targets = await startTargets(upstream, failures);
  if (targets.length === 0) throw new Error('no target could be started');
  const results = await measure(targets, upstream.child);
  const markdown = report(results, targets, failures);
  console.log(`\n${markdown}`);
  mkdirSync(resolve(values.out, '..'), { recursive: true });
  writeFileSync(values.out, markdown);
  console.error(`written to ${values.out}`);
  const errors = [...results.values()].reduce((n, s) => n + s.errors, 0);
  if (errors > 0) console.error(`${errors} calls failed: see the errors column`);
  return errors > 0 || failures.length > 0 ? 1 : 0;
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
