// The overhead benchmark (`npm run bench`): tools/call through nothing (direct), through the barest Node
// relay (floor) and through Gatehouse, in interleaved rounds on 127.0.0.1. See bench/README.md.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'undici';
import {
  CHECK_TABLE,
  disturbance,
  loadCpu,
  measureInterleaved,
  ms,
  ROUND_TABLE,
  type Round,
  reportHead,
  root,
  roundFlags,
  roundRow,
  roundSettings,
  runBenchmark,
  type Summary,
  scratchDir,
  verdict,
  writeReport,
} from './cli.ts';
import { openSession, runRound, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch as launchNode } from './processes.ts';
import { pct } from './summary.ts';

const TARGET_NAMES = ['direct', 'floor', 'edge', 'gateway'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const values = roundFlags(TARGET_NAMES, 'latest.md');
const settings = roundSettings(TARGET_NAMES, values);
const STARTUP_TIMEOUT_MS = 20_000;

type Target = { name: TargetName; session: Session; relay: Child | undefined };

/** Starts `node <args(port)>` on a free port and waits until it accepts connections. */
async function launch(name: string, args: (port: number) => string[]): Promise<{ child: Child; url: URL }> {
  const { child, port } = await launchNode(name, args, root, STARTUP_TIMEOUT_MS);
  return { child, url: new URL(`http://127.0.0.1:${port}/mcp`) };
}

/**
 * The gateway's config: `gateway` runs on the defaults a user gets (audit to SQLite and metrics on);
 * `edge` turns both off — the MCP edge and relay alone, comparable with runs before telemetry existed.
 */
function gatewayConfig(upstreamUrl: URL, port: number, telemetry: boolean): string {
  const file = join(scratchDir('gatehouse-bench-'), 'gatehouse.yaml');
  writeFileSync(
    file,
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      'log: { level: warn }',
      ...(telemetry ? [] : ['audit: { enabled: false }', 'metrics: { enabled: false }']),
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
      } else if (name === 'gateway' || name === 'edge') {
        ({ child: relay, url } = await launch(name, (port) => [
          'src/cli/main.ts',
          'serve',
          '-c',
          gatewayConfig(upstream.url, port, name === 'gateway'),
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
  const m = await loadCpu(() => runRound(pool, t.session, concurrency, settings.durationMs));
  const relayCpuMs = t.relay ? cpuTimeMs(t.relay.pid) - relay0 : 0;
  const upstreamCpuMs = cpuTimeMs(upstream.pid) - upstream0;
  const otherCpuMs = Math.max(0, m.machineMs - relayCpuMs - upstreamCpuMs - m.loadMs);
  return { ...m.value, relayCpuMs, upstreamCpuMs, loadCpuMs: m.loadMs, otherCpuMs };
}

function report(results: Map<string, Summary>, targets: Target[], failures: string[]): string {
  const lines = [
    ...reportHead(
      'Run',
      'bench/run.ts',
      `targets ${targets.map((t) => t.name).join(', ')}; concurrency ${settings.concurrency.join(', ')}; ` +
        `${settings.rounds} interleaved rounds × ${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up per target`,
    ),
    ...failures.map((f) => `- **${f}**`),
    '',
    ...ROUND_TABLE,
  ];
  for (const c of settings.concurrency) {
    for (const t of targets)
      lines.push(roundRow(c, t.name, results.get(`${t.name}@${c}`)!, t.relay !== undefined));
  }
  lines.push(
    ...disturbance(
      [...results.values()].map((s) => s.otherShare),
      'rounds',
    ),
  );

  const get = (name: TargetName, c: number) => results.get(`${name}@${c}`);
  const floor16 = get('floor', 16);
  const direct16 = get('direct', 16);
  lines.push('', ...CHECK_TABLE);
  if (floor16 && direct16) {
    lines.push(
      `| floor / direct throughput at c16 (orientation) | ${pct(floor16.rps / direct16.rps)} | — | — |`,
    );
  }
  const na = '| n/a (needs floor and the target at this concurrency) |';
  // The edge targets hold for the relay alone (edge); the defaults (gateway: + audit + metrics) are shown
  // against the same bars — their cost is itemised by bench:telemetry.
  for (const name of ['edge', 'gateway'] as const) {
    const t16 = get(name, 16);
    const floor1 = get('floor', 1);
    const t1 = get(name, 1);
    if (!targets.some((t) => t.name === name)) continue;
    lines.push(
      t16 && floor16
        ? `| ${name} / floor throughput at c16 | ${pct(t16.rps / floor16.rps)} | ≥ 75% | ${verdict(t16.rps / floor16.rps >= 0.75)} |`
        : `| ${name} / floor throughput at c16 | — | ≥ 75% ${na}`,
      t16 && floor16
        ? `| ${name} / floor CPU per call at c16 | ${(t16.relayCpu / floor16.relayCpu).toFixed(2)}× | ≤ 1.5× | ${verdict(t16.relayCpu / floor16.relayCpu <= 1.5)} |`
        : `| ${name} / floor CPU per call at c16 | — | ≤ 1.5× ${na}`,
      t1 && floor1
        ? `| ${name} p50 − floor p50 at c1 | ${ms(t1.p50 - floor1.p50)} ms | ≤ 0.5 ms | ${verdict(t1.p50 - floor1.p50 <= 0.5)} |`
        : `| ${name} p50 − floor p50 at c1 | — | ≤ 0.5 ms ${na}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const failures: string[] = [];
  const upstream = await launch('upstream', (port) => ['bench/upstream.ts', '--port', String(port)]);
  const targets = await startTargets(upstream, failures);
  if (targets.length === 0) throw new Error('no target could be started');
  const results = await measureInterleaved(targets, settings, (t, pool, c) =>
    measureRound(t, pool, c, upstream.child),
  );
  writeReport(values.out, report(results, targets, failures));
  const errors = [...results.values()].reduce((n, s) => n + s.errors, 0);
  if (errors > 0) console.error(`${errors} calls failed: see the errors column`);
  return errors > 0 || failures.length > 0 ? 1 : 0;
}

runBenchmark(main);
