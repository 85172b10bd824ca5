// The peers benchmark (`npm run bench:peers`): one stdio MCP server (bench/stdio-upstream.ts) fronted over
// Streamable HTTP by Gatehouse (shared and per-session upstream process), by mcp-proxy and by
// supergateway --stateful, tools/call in interleaved rounds on 127.0.0.1. See bench/README.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Pool } from 'undici';
import { createPool, openSession, parseMessage, type RoundResult, runRound, type Session } from './load.ts';
import {
  type Child,
  cpuTimeMs,
  launch as launchNode,
  machineBusyMs,
  processTree,
  stopAll,
  stopAndWait,
} from './processes.ts';
import { commit, pct, percentile } from './summary.ts';

const TARGET_NAMES = ['gateway', 'gateway-per-session', 'mcp-proxy', 'supergateway'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const root = resolve(import.meta.dirname, '..');
const UPSTREAM = join(root, 'bench/stdio-upstream.ts');
const env = process.env;
const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: env.BENCH_TARGETS ?? TARGET_NAMES.join(',') },
    concurrency: { type: 'string', default: env.BENCH_CONCURRENCY ?? '1,16,64' },
    rounds: { type: 'string', default: env.BENCH_ROUNDS ?? '3' },
    duration: { type: 'string', default: env.BENCH_DURATION ?? '3' },
    warmup: { type: 'string', default: env.BENCH_WARMUP ?? '1' },
    out: { type: 'string', default: env.BENCH_OUT ?? join(root, 'bench/out/peers.md') },
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
const STARTUP_TIMEOUT_MS = 30_000;

/** A relay in front of its own copy of the stdio upstream, with the MCP session the benchmark holds on it. */
type Target = { name: TargetName; label: string; relay: Child; session: Session; processes: string };
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

/** The entry script and version of an installed npm package's command (a devDependency of this repo). */
function installed(pkg: string): { script: string; version: string } {
  const dir = join(root, 'node_modules', pkg);
  let manifest: { version?: string; bin?: string | Record<string, string> };
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  } catch {
    throw new Error(`${pkg} is not installed: run \`npm ci\` (it is a devDependency)`);
  }
  const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[pkg];
  if (bin === undefined) throw new Error(`${pkg}'s package.json names no \`${pkg}\` command`);
  return { script: join(dir, bin), version: manifest.version ?? '?' };
}

/** `s` quoted for sh -c (supergateway runs its --stdio command through a shell). */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function gatewayConfig(name: string, port: number, mode: 'shared' | 'per-session'): string {
  tmp ??= mkdtempSync(join(tmpdir(), 'gatehouse-bench-peers-'));
  const file = join(tmp, `${name}.yaml`);
  // JSON strings are YAML flow scalars: paths with spaces or colons stay one value.
  writeFileSync(
    file,
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      'log: { level: warn }',
      'upstreams:',
      `  bench: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(UPSTREAM)}], mode: ${mode} }`,
      'routes:',
      '  - path: /mcp',
      '    upstreams: [bench]',
      '    tools: { prefix: never }',
      '',
    ].join('\n'),
  );
  return file;
}

/** The relay's node arguments for `port`, and how the report names it (with the peer's version). */
function relayCommand(name: TargetName): { label: string; args: (port: number) => string[] } {
  switch (name) {
    case 'gateway':
    case 'gateway-per-session': {
      const mode = name === 'gateway' ? 'shared' : 'per-session';
      return {
        label: `${name} (Gatehouse, mode: ${mode})`,
        args: (port) => ['src/cli/main.ts', 'serve', '-c', gatewayConfig(name, port, mode)],
      };
    }
    case 'mcp-proxy': {
      const { script, version } = installed('mcp-proxy');
      return {
        label: `mcp-proxy ${version}`,
        args: (port) => [
          script,
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--server',
          'stream',
          '--',
          process.execPath,
          UPSTREAM,
        ],
      };
    }
    case 'supergateway': {
      const { script, version } = installed('supergateway');
      return {
        label: `supergateway ${version} --stateful`,
        args: (port) => [
          script,
          '--stdio',
          `${shellQuote(process.execPath)} ${shellQuote(UPSTREAM)}`,
          '--outputTransport',
          'streamableHttp',
          '--stateful',
          '--port',
          String(port),
          // Its default (info) logs every message both ways; Gatehouse runs at warn.
          '--logLevel',
          'none',
        ],
      };
    }
  }
}

/** tools/list through the relay: the session must really reach the upstream and see its `echo` tool. */
async function checkTools(session: Session): Promise<void> {
  const res = await fetch(session.url, {
    method: 'POST',
    headers: session.headers,
    body: '{"jsonrpc":"2.0","id":"list","method":"tools/list"}',
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`tools/list -> HTTP ${res.status}: ${text.slice(0, 300)}`);
  const msg = parseMessage(res.headers.get('content-type') ?? '', text) as {
    result?: { tools?: Array<{ name?: string }> };
  };
  if (!msg.result?.tools?.some((t) => t.name === 'echo')) {
    throw new Error(`tools/list does not list echo: ${text.slice(0, 300)}`);
  }
}

type Usage = { cpuMs: number; upstream: boolean };

/**
 * CPU so far of the relay and its descendants, by pid. A copy of the stdio upstream is `node <UPSTREAM>`:
 * told apart by its script, not by the path appearing anywhere in its argv (mcp-proxy's and a shell's do).
 */
function treeUsage(relay: Child): Map<number, Usage> {
  const usage = new Map<number, Usage>();
  for (const p of processTree(relay.pid)) {
    try {
      usage.set(p.pid, { cpuMs: cpuTimeMs(p.pid), upstream: p.argv[1] === UPSTREAM });
    } catch {
      // exited between the listing and the read
    }
  }
  return usage;
}

/** What the relay's and the upstream's processes spent between two snapshots (a new process: all of it). */
function usageDelta(before: Map<number, Usage>, after: Map<number, Usage>) {
  let relay = 0;
  let upstream = 0;
  for (const [pid, u] of after) {
    const spent = u.cpuMs - (before.get(pid)?.cpuMs ?? 0);
    if (u.upstream) upstream += spent;
    else relay += spent;
  }
  return { relay, upstream };
}

/** "2 + 1": processes of the relay (the relay, shells …) + copies of the upstream, once the session is open. */
function describeTree(relay: Child): string {
  const tree = [...treeUsage(relay).values()];
  const upstreams = tree.filter((u) => u.upstream).length;
  return `${tree.length - upstreams} + ${upstreams}`;
}

async function startTargets(failures: string[]): Promise<Target[]> {
  const targets: Target[] = [];
  for (const name of settings.targets) {
    let relay: Child | undefined;
    try {
      const command = relayCommand(name);
      const launched = await launchNode(name, command.args, root, STARTUP_TIMEOUT_MS);
      relay = launched.child;
      const session = await openSession(new URL(`http://127.0.0.1:${launched.port}/mcp`));
      await checkTools(session);
      targets.push({ name, label: command.label, relay, session, processes: describeTree(relay) });
      console.error(`${name}: session open on port ${launched.port}`);
    } catch (err) {
      const output = relay?.output().trim();
      const message = `${name}: FAILED to start or to keep an MCP session — ${(err as Error).message}`;
      console.error(`\n${message}${output ? `\n--- ${name} output ---\n${output}` : ''}\n`);
      failures.push(message.split('\n')[0]!);
      if (relay) await stopAndWait(relay);
    }
  }
  return targets;
}

async function measureRound(t: Target, pool: Pool, concurrency: number): Promise<Round> {
  const tree0 = treeUsage(t.relay);
  const load0 = process.cpuUsage();
  const machine0 = machineBusyMs();
  const result = await runRound(pool, t.session, concurrency, settings.durationMs);
  const machineCpuMs = machineBusyMs() - machine0;
  const load = process.cpuUsage(load0);
  const { relay: relayCpuMs, upstream: upstreamCpuMs } = usageDelta(tree0, treeUsage(t.relay));
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

async function measure(targets: Target[], failures: string[]): Promise<Map<string, Summary>> {
  const results = new Map<string, Summary>();
  for (const c of settings.concurrency) {
    const pools = new Map<TargetName, Pool>(targets.map((t) => [t.name, createPool(t.session, c)]));
    const rounds = new Map<TargetName, Round[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) {
      const warm = await runRound(pools.get(t.name)!, t.session, c, settings.warmupMs);
      if (warm.errors > 0)
        failures.push(`${t.name}: ${warm.errors} of ${warm.calls} warm-up calls failed at c${c}`);
    }
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

function report(results: Map<string, Summary>, targets: Target[], failures: string[]): string {
  const cpu = cpus();
  const ms = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
  const lines = [
    `## Peers run of ${new Date().toISOString()}`,
    '',
    `- command: \`node bench/peers.ts ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
    `- settings: concurrency ${settings.concurrency.join(', ')}; ${settings.rounds} interleaved rounds × ` +
      `${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up per target`,
    `- node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ` +
      `commit ${commit()}`,
    `- targets (processes: relay + stdio upstream): ${targets.map((t) => `${t.label} (${t.processes})`).join('; ')}`,
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
          `${s.calls} | ${s.errors} | ${ms(s.relayCpu, 3)} | ${ms(s.upstreamCpu, 3)} | ${ms(s.loadCpu, 3)} | ${pct(s.otherShare)} |`,
      );
    }
  }
  const disturbed = Math.max(0, ...[...results.values()].map((s) => s.otherShare));
  if (disturbed > 0.1) {
    lines.push(
      '',
      `**Disturbed run**: other work used up to ${pct(disturbed)} of the machine during some rounds; ` +
        'rerun on an idle machine before trusting these figures.',
    );
  }

  const get = (name: TargetName, c: number) => results.get(`${name}@${c}`);
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const ratio = (x: number) => `${x.toFixed(2)}×`;
  const proxy16 = get('mcp-proxy', 16);
  const superg16 = get('supergateway', 16);
  lines.push('', '| check | measured | target | result |', '|---|---:|---:|---|');
  for (const gateway of ['gateway', 'gateway-per-session'] as const) {
    if (!settings.targets.includes(gateway)) continue;
    const gate16 = get(gateway, 16);
    lines.push(
      gate16 && proxy16
        ? `| ${gateway} / mcp-proxy throughput at c16 | ${ratio(gate16.rps / proxy16.rps)} | ≥ 1.5× | ${verdict(gate16.rps / proxy16.rps >= 1.5)} |`
        : `| ${gateway} / mcp-proxy throughput at c16 | — | ≥ 1.5× | n/a (needs ${gateway} and mcp-proxy at c16) |`,
    );
    if (gate16 && proxy16) {
      lines.push(
        `| ${gateway} / mcp-proxy relay CPU per call at c16 (orientation) | ${ratio(gate16.relayCpu / proxy16.relayCpu)} | — | — |`,
      );
    }
    if (gate16 && superg16) {
      lines.push(
        `| ${gateway} / supergateway throughput at c16 (orientation) | ${ratio(gate16.rps / superg16.rps)} | — | — |`,
      );
    }
  }
  const errors = [...results.values()].reduce((n, s) => n + s.errors, 0);
  lines.push(`| failed calls, all targets and concurrencies | ${errors} | 0 | ${verdict(errors === 0)} |`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const failures: string[] = [];
  const targets = await startTargets(failures);
  if (targets.length === 0) throw new Error(`no target could be started:\n${failures.join('\n')}`);
  const results = await measure(targets, failures);
  const markdown = report(results, targets, failures);
  console.log(`\n${markdown}`);
  mkdirSync(resolve(values.out, '..'), { recursive: true });
  writeFileSync(values.out, markdown);
  console.error(`written to ${values.out}`);
  await Promise.all(targets.map((t) => stopAndWait(t.relay)));
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
