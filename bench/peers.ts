// The peers benchmark (`npm run bench:peers`): one stdio MCP server (bench/stdio-upstream.ts) fronted over
// Streamable HTTP by Gatehouse (shared and per-session upstream process), by mcp-proxy and by
// supergateway --stateful, tools/call in interleaved rounds on 127.0.0.1. See bench/README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'undici';
import {
  CHECK_TABLE,
  disturbance,
  loadCpu,
  measureInterleaved,
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
import { openSession, parseMessage, runRound, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch as launchNode, processTree, stopAndWait } from './processes.ts';

const TARGET_NAMES = ['gateway', 'gateway-per-session', 'mcp-proxy', 'supergateway'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const UPSTREAM = join(root, 'bench/stdio-upstream.ts');
const values = roundFlags(TARGET_NAMES, 'peers.md');
const settings = roundSettings(TARGET_NAMES, values);
const STARTUP_TIMEOUT_MS = 30_000;

/** A relay in front of its own copy of the stdio upstream, with the MCP session the benchmark holds on it. */
type Target = { name: TargetName; label: string; relay: Child; session: Session; processes: string };

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
  const file = join(scratchDir('gatehouse-bench-peers-'), `${name}.yaml`);
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
  const m = await loadCpu(() => runRound(pool, t.session, concurrency, settings.durationMs));
  const { relay: relayCpuMs, upstream: upstreamCpuMs } = usageDelta(tree0, treeUsage(t.relay));
  const otherCpuMs = Math.max(0, m.machineMs - relayCpuMs - upstreamCpuMs - m.loadMs);
  return { ...m.value, relayCpuMs, upstreamCpuMs, loadCpuMs: m.loadMs, otherCpuMs };
}

function report(results: Map<string, Summary>, targets: Target[], failures: string[]): string {
  const lines = [
    ...reportHead(
      'Peers run',
      'bench/peers.ts',
      `concurrency ${settings.concurrency.join(', ')}; ${settings.rounds} interleaved rounds × ` +
        `${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up per target`,
    ),
    `- targets (processes: relay + stdio upstream): ${targets.map((t) => `${t.label} (${t.processes})`).join('; ')}`,
    ...failures.map((f) => `- **${f}**`),
    '',
    ...ROUND_TABLE,
  ];
  for (const c of settings.concurrency) {
    for (const t of targets) lines.push(roundRow(c, t.name, results.get(`${t.name}@${c}`)!));
  }
  lines.push(
    ...disturbance(
      [...results.values()].map((s) => s.otherShare),
      'rounds',
    ),
  );

  const get = (name: TargetName, c: number) => results.get(`${name}@${c}`);
  const ratio = (x: number) => `${x.toFixed(2)}×`;
  const proxy16 = get('mcp-proxy', 16);
  const superg16 = get('supergateway', 16);
  lines.push('', ...CHECK_TABLE);
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
  const results = await measureInterleaved(targets, settings, measureRound, (t, c, warm) => {
    if (warm.errors > 0)
      failures.push(`${t.name}: ${warm.errors} of ${warm.calls} warm-up calls failed at c${c}`);
  });
  writeReport(values.out, report(results, targets, failures));
  await Promise.all(targets.map((t) => stopAndWait(t.relay)));
  const errors = [...results.values()].reduce((n, s) => n + s.errors, 0);
  if (errors > 0) console.error(`${errors} calls failed: see the errors column`);
  return errors > 0 || failures.length > 0 ? 1 : 0;
}

runBenchmark(main);
