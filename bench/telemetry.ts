// The telemetry benchmark (`npm run bench:telemetry`): what full audit (SQLite), metrics and tracing cost on a
// `tools/call`. Gateways in front of one upstream — `bare` (all three off) and `full` (all on, spans exported
// to a collector that discards them), and on request `audit`, `metrics` or `tracing` alone — in interleaved
// rounds; then a sustained open-loop phase against `full`, after which every audit record is counted in
// SQLite and the chain is verified with `gatehouse audit verify`. See bench/README.md.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'undici';
import {
  CHECK_TABLE,
  disturbance,
  fail,
  flags,
  loadCpu,
  measureInterleaved,
  ms,
  ROUND_TABLE,
  type Round,
  reportHead,
  root,
  roundRow,
  roundSettings,
  runBenchmark,
  type Summary,
  scratchDir,
  verdict,
  writeReport,
} from './cli.ts';
import { callEcho, createPool, openSession, runRound, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch } from './processes.ts';
import { pct, percentile } from './summary.ts';

/** bare: all three off; full: all three on; audit, metrics, tracing: that one alone (for a breakdown). */
const TARGET_NAMES = ['bare', 'audit', 'metrics', 'tracing', 'full'] as const;
type TargetName = (typeof TARGET_NAMES)[number];
const FEATURES: Record<TargetName, { audit: boolean; metrics: boolean; tracing: boolean }> = {
  bare: { audit: false, metrics: false, tracing: false },
  audit: { audit: true, metrics: false, tracing: false },
  metrics: { audit: false, metrics: true, tracing: false },
  tracing: { audit: false, metrics: false, tracing: true },
  full: { audit: true, metrics: true, tracing: true },
};

const values = flags({
  targets: 'bare,full',
  concurrency: '1,16',
  rounds: '3',
  duration: '3',
  warmup: '1',
  settle: '0.5',
  sustained: '30',
  rate: '2500',
  'sustained-connections': '32',
  'drain-timeout': '60',
  out: join(root, 'bench/out/telemetry.md'),
});
const settings = roundSettings(TARGET_NAMES, values);
const settleMs = Number(values.settle) * 1000;
const sustainedMs = Number(values.sustained) * 1000;
const rate = Number(values.rate);
const sustainedConnections = Number(values['sustained-connections']);
const drainTimeoutMs = Number(values['drain-timeout']) * 1000;
if (
  !(settleMs >= 0 && sustainedMs >= 0) ||
  !(rate > 0 && drainTimeoutMs > 0) ||
  !(Number.isInteger(sustainedConnections) && sustainedConnections > 0)
) {
  fail(
    '--settle and --sustained must be zero or more (0: no sustained phase), --rate and --drain-timeout positive, ' +
      '--sustained-connections a positive integer',
  );
}

const STARTUP_TIMEOUT_MS = 20_000;
const READY_TIMEOUT_MS = 30_000;
const CPU_TARGET_MS = 0.1;
const RATE_TARGET = 2000;
/** Calls the open loop lets be outstanding at once before it waits (then they are late, and counted so). */
const MAX_IN_FLIGHT = 4096;
/** The span export delay: short, so that a round's spans are exported within its settle time. */
const EXPORT_DELAY = '250ms';
const SPANS_PER_CALL = 2;

/** A gateway's address, config file and directory (its audit database and spool are there). */
type GatewayFiles = { base: string; config: string; dir: string };
type Gateway = GatewayFiles & { child: Child };
type Target = { name: TargetName; session: Session; gateway: Gateway };

const log = (message: string) => console.error(message);

function gatewayConfig(name: TargetName, upstreamUrl: URL, port: number, collectorUrl: string): GatewayFiles {
  const dir = join(scratchDir('gatehouse-bench-telemetry-'), name);
  mkdirSync(dir, { recursive: true });
  const on = FEATURES[name];
  const telemetry = [
    on.audit
      ? 'audit: { sinks: [{ type: sqlite, path: audit.db }], spool: { dir: audit-spool } }'
      : 'audit: { enabled: false }',
    `metrics: { enabled: ${on.metrics} }`,
    on.tracing
      ? `tracing: { enabled: true, endpoint: "${collectorUrl}", export_delay: ${EXPORT_DELAY} }`
      : 'tracing: { enabled: false }',
  ];
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(
    config,
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      'log: { level: warn }',
      ...telemetry,
      'upstreams:',
      `  bench: { type: streamable-http, url: ${upstreamUrl.href} }`,
      'routes:',
      '  - path: /mcp',
      '    upstreams: [bench]',
      '    tools: { prefix: never }',
      '',
    ].join('\n'),
  );
  return { base: `http://127.0.0.1:${port}`, config, dir };
}

/** JSON-RPC requests sent to each gateway (each makes one audit record): initialize and every tools/call. */
const requestsSent = Object.fromEntries(TARGET_NAMES.map((n) => [n, 0])) as Record<TargetName, number>;
/** tools/call requests sent to each gateway. */
const callsSent = { ...requestsSent };

async function session(name: TargetName, g: GatewayFiles): Promise<Session> {
  requestsSent[name]++;
  return openSession(new URL(`${g.base}/mcp`));
}

/**
 * Calls echo until it succeeds (the gateway loads the upstream's catalogue in the background); returns the
 * calls it took.
 */
async function waitForEcho(name: TargetName, s: Session): Promise<number> {
  const pool = createPool(s, 1);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (let calls = 1; ; calls++) {
      requestsSent[name]++;
      callsSent[name]++;
      if (await callEcho(pool, s)) return calls;
      if (Date.now() > deadline)
        throw new Error(`${name}: tools/call echo still fails after ${READY_TIMEOUT_MS} ms`);
      await sleep(100);
    }
  } finally {
    await pool.close();
  }
}

type Collector = { child: Child; url: string; stats(): Promise<{ requests: number; spans: number }> };

/** What measureInterleaved's rounds do not keep: the collector's share, the idle gateway, per-round p99s. */
type Extra = {
  collectorMs: number;
  /** The gateway's main thread (its event loop) alone; the rest is the audit writer, GC, libuv's pool. */
  mainThreadMs: number;
  spans: number;
  calls: number;
  idleMs: number;
  elapsedMs: number;
  p99s: number[];
};
const extras = new Map<string, Extra>();

/** CPU time of process `pid`'s main thread alone (its event loop), in ms. */
const mainThreadCpuMs = (pid: number) => cpuTimeMs(pid, pid);

async function measureCallRound(
  t: Target,
  pool: Pool,
  c: number,
  targets: Target[],
  upstream: Child,
  collector: Collector | undefined,
): Promise<Round> {
  const idle = targets.filter((o) => o !== t).map((o) => o.gateway.child.pid);
  const idleCpu = () => idle.reduce((n, pid) => n + cpuTimeMs(pid), 0);
  const collectorCpu = () => (collector ? cpuTimeMs(collector.child.pid) : 0);
  const spans0 = collector ? (await collector.stats()).spans : 0;
  const gateway0 = cpuTimeMs(t.gateway.child.pid);
  const main0 = mainThreadCpuMs(t.gateway.child.pid);
  const upstream0 = cpuTimeMs(upstream.pid);
  const collector0 = collectorCpu();
  const idle0 = idleCpu();
  const m = await loadCpu(() => runRound(pool, t.session, c, settings.durationMs));
  const gatewayInRoundMs = cpuTimeMs(t.gateway.child.pid) - gateway0;
  const upstreamCpuMs = cpuTimeMs(upstream.pid) - upstream0;
  const collectorInRoundMs = collectorCpu() - collector0;
  const idleMs = idleCpu() - idle0;
  // Audit batches (flush_interval 50 ms) and span exports (export_delay 250 ms) of the round's last calls
  // happen after it: they are the round's cost too.
  await sleep(settleMs);
  const relayCpuMs = cpuTimeMs(t.gateway.child.pid) - gateway0;
  const mainThreadMs = mainThreadCpuMs(t.gateway.child.pid) - main0;
  const collectorMs = collectorCpu() - collector0;
  const spans = collector ? (await collector.stats()).spans - spans0 : 0;
  const otherCpuMs = Math.max(
    0,
    m.machineMs - gatewayInRoundMs - upstreamCpuMs - m.loadMs - collectorInRoundMs - idleMs,
  );
  requestsSent[t.name] += m.value.calls;
  callsSent[t.name] += m.value.calls;

  const key = `${t.name}@${c}`;
  const e = extras.get(key) ?? {
    collectorMs: 0,
    mainThreadMs: 0,
    spans: 0,
    calls: 0,
    idleMs: 0,
    elapsedMs: 0,
    p99s: [],
  };
  e.collectorMs += collectorMs;
  e.mainThreadMs += mainThreadMs;
  e.spans += spans;
  e.calls += m.value.calls;
  e.idleMs += idleMs;
  e.elapsedMs += m.value.elapsedMs;
  e.p99s.push(percentile(Float64Array.from(m.value.latenciesMs).sort(), 0.99));
  extras.set(key, e);
  return { ...m.value, relayCpuMs, upstreamCpuMs, loadCpuMs: m.loadMs, otherCpuMs };
}

type OpenLoop = {
  calls: number;
  errors: number;
  elapsedMs: number;
  /** From each call's scheduled time (so that a gateway falling behind shows), not from when it was sent. */
  latenciesMs: number[];
  late: number;
};

/**
 * Open loop: `rate` × `durationMs` calls, each sent at its scheduled time whatever the answers before it
 * (at most MAX_IN_FLIGHT outstanding); a call sent more than 10 ms after its time counts as late.
 * `progress.answered` counts the answers as they come.
 */
function runOpenLoop(
  pool: Pool,
  s: Session,
  callsPerSecond: number,
  durationMs: number,
  progress: { answered: number },
): Promise<OpenLoop> {
  const total = Math.max(1, Math.round((callsPerSecond * durationMs) / 1000));
  const latenciesMs: number[] = [];
  let errors = 0;
  let sent = 0;
  let inFlight = 0;
  let late = 0;
  let lastAnswer = 0;
  const start = performance.now();
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * callsPerSecond) / 1000) + 1);
      while (sent < due && inFlight < MAX_IN_FLIGHT) {
        const scheduled = start + (sent * 1000) / callsPerSecond;
        if (now - scheduled > 10) late++;
        sent++;
        inFlight++;
        void callEcho(pool, s).then((ok) => {
          lastAnswer = performance.now();
          latenciesMs.push(lastAnswer - scheduled);
          progress.answered++;
          if (!ok) errors++;
          inFlight--;
          if (sent === total && inFlight === 0) {
            resolve({ calls: latenciesMs.length, errors, elapsedMs: lastAnswer - start, latenciesMs, late });
          }
        });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
}

/** The sum of the samples of metric `name` whose labels contain every `labels` pair; NaN when there is none. */
function sample(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  return found ? sum : Number.NaN;
}

async function scrape(g: Gateway): Promise<string> {
  const res = await fetch(`${g.base}/metrics`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /metrics of the ${g.config} gateway: HTTP ${res.status}`);
  return text;
}

/**
 * The full gateway's SQLite audit file, opened read-only by the benchmark (WAL lets a reader sit beside the
 * writer thread); reading it costs the gateway nothing.
 */
class AuditFile {
  readonly #db: DatabaseSync;
  constructor(file: string) {
    this.#db = new DatabaseSync(file, { readOnly: true });
  }
  #n(sql: string, ...params: string[]): number {
    return Number((this.#db.prepare(sql).get(...params) as { n: number | bigint | null }).n ?? 0);
  }
  /** The last record's seq: records written so far (seq is the rowid: no scan). */
  lastSeq(): number {
    return this.#n('SELECT max(seq) AS n FROM audit_log');
  }
  count(sessionId: string | undefined): AuditCount {
    const methods = this.#db
      .prepare('SELECT mcp_method AS m, count(*) AS n FROM audit_log GROUP BY mcp_method ORDER BY n DESC')
      .all() as { m: string | null; n: number }[];
    return {
      rows: this.#n('SELECT count(*) AS n FROM audit_log'),
      lastSeq: this.lastSeq(),
      gaps: this.#n("SELECT count(*) AS n FROM audit_log WHERE mcp_method = 'gatehouse/audit_gap'"),
      sessionCalls: this.#n(
        "SELECT count(*) AS n FROM audit_log WHERE session_id = ? AND mcp_method = 'tools/call'",
        sessionId ?? '',
      ),
      notOk: this.#n("SELECT count(*) AS n FROM audit_log WHERE outcome <> 'ok'"),
      byMethod: methods.map((r) => `${r.m ?? '(none)'} ${r.n}`).join(', '),
    };
  }
  close(): void {
    this.#db.close();
  }
}

type AuditCount = {
  rows: number;
  lastSeq: number;
  gaps: number;
  sessionCalls: number;
  notOk: number;
  byMethod: string;
};

type Drain = { drained: boolean; ms: number; lastSeq: number };

/**
 * Polls the audit file from `since` until `expected` records are in it (drained), or nothing more has come
 * for 2 s, or --drain-timeout passes.
 */
async function waitForRecords(file: AuditFile, expected: number, since: number): Promise<Drain> {
  let last = -1;
  let changedAt = performance.now();
  for (;;) {
    const lastSeq = file.lastSeq();
    const now = performance.now();
    if (lastSeq >= expected) return { drained: true, ms: now - since, lastSeq };
    if (lastSeq !== last) {
      last = lastSeq;
      changedAt = now;
    }
    if (now - changedAt > 2000 || now - since > drainTimeoutMs)
      return { drained: false, ms: now - since, lastSeq };
    await sleep(5);
  }
}

/** `gatehouse audit verify -c <full config>`: its exit code and output. */
function verifyAudit(config: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['src/cli/main.ts', 'audit', 'verify', '-c', config],
      { cwd: root, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, output: `${stdout}${stderr}`.trim() || (err?.message ?? '') });
      },
    );
  });
}

type Sustained = {
  loop: OpenLoop;
  p50: number;
  p99: number;
  max: number;
  gatewayCpu: number;
  mainThreadCpu: number;
  upstreamCpu: number;
  collectorCpu: number;
  loadCpu: number;
  otherShare: number;
  /** The most records answered but not yet in SQLite, sampled every 250 ms during the phase. */
  maxLag: number;
  spans: number;
  drain: Drain;
  metrics: { queueDepth: number; backlog: number; written: number; lost: number; dropped: number };
  audit: AuditCount;
  expectedRows: number;
  /** tools/call sent on the sustained session: the open loop's and the readiness calls before it. */
  sessionCalls: number;
  verify: { code: number; output: string };
  metricsCalls: number;
  scrapeMs: number;
  scrapeBytes: number;
};

async function sustainedPhase(
  full: Target,
  idle: Child[],
  upstream: Child,
  collector: Collector,
): Promise<Sustained> {
  const s = await session('full', full.gateway);
  const readiness = await waitForEcho('full', s);
  const file = new AuditFile(join(full.gateway.dir, 'audit.db'));
  const pool = createPool(s, sustainedConnections);
  const gatewayPid = full.gateway.child.pid;
  const idleCpu = () => idle.reduce((n, c) => n + cpuTimeMs(c.pid), 0);
  try {
    await sleep(settleMs); // the readiness call's spans
    log(`sustained: ${rate} calls/s offered for ${sustainedMs / 1000} s to full…`);
    const before = requestsSent.full;
    const progress = { answered: 0 };
    let maxLag = 0;
    const lagTimer = setInterval(() => {
      maxLag = Math.max(maxLag, before + progress.answered - file.lastSeq());
    }, 250);
    const spans0 = (await collector.stats()).spans;
    const gateway0 = cpuTimeMs(gatewayPid);
    const main0 = mainThreadCpuMs(gatewayPid);
    const upstream0 = cpuTimeMs(upstream.pid);
    const collector0 = cpuTimeMs(collector.child.pid);
    const idle0 = idleCpu();
    const m = await loadCpu(() => runOpenLoop(pool, s, rate, sustainedMs, progress)).finally(() =>
      clearInterval(lagTimer),
    );
    const end = performance.now();
    const upstreamMs = cpuTimeMs(upstream.pid) - upstream0;
    const gatewayInPhase = cpuTimeMs(gatewayPid) - gateway0;
    const collectorInPhase = cpuTimeMs(collector.child.pid) - collector0;
    const idleMs = idleCpu() - idle0;
    const loop = m.value;
    requestsSent.full += loop.calls;
    callsSent.full += loop.calls;
    log(
      `sustained: ${loop.calls} calls in ${(loop.elapsedMs / 1000).toFixed(1)} s ` +
        `(${((loop.calls * 1000) / loop.elapsedMs).toFixed(0)}/s), ${loop.errors} errors; waiting for the audit…`,
    );
    // The records still queued, and the CPU of the phase with its settle time (as in the rounds).
    const settled = sleep(settleMs).then(() => ({
      gatewayMs: cpuTimeMs(gatewayPid) - gateway0,
      mainThreadMs: mainThreadCpuMs(gatewayPid) - main0,
      collectorMs: cpuTimeMs(collector.child.pid) - collector0,
    }));
    const drain = await waitForRecords(file, requestsSent.full, end);
    const { gatewayMs, mainThreadMs, collectorMs } = await settled;
    await sleep(Math.max(0, 300 - (performance.now() - end))); // the last spans (export_delay)
    const spans = (await collector.stats()).spans - spans0;
    const exposition = await scrape(full.gateway);
    const metrics = {
      queueDepth: sample(exposition, 'gatehouse_audit_queue_depth'),
      backlog: sample(exposition, 'gatehouse_audit_backlog'),
      written: sample(exposition, 'gatehouse_audit_written_total'),
      lost: sample(exposition, 'gatehouse_audit_lost_total'),
      dropped: sample(exposition, 'gatehouse_audit_dropped_total'),
    };
    const audit = file.count(s.headers['mcp-session-id']);
    const verify = await verifyAudit(full.gateway.config);
    const t0 = performance.now();
    const last = await scrape(full.gateway);
    const scrapeMs = performance.now() - t0;
    const sorted = Float64Array.from(loop.latenciesMs).sort();
    return {
      loop,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted.at(-1) ?? Number.NaN,
      gatewayCpu: gatewayMs / loop.calls,
      mainThreadCpu: mainThreadMs / loop.calls,
      upstreamCpu: upstreamMs / loop.calls,
      collectorCpu: collectorMs / loop.calls,
      loadCpu: m.loadMs / loop.calls,
      otherShare:
        Math.max(0, m.machineMs - m.loadMs - upstreamMs - gatewayInPhase - collectorInPhase - idleMs) /
        (loop.elapsedMs * cpus().length),
      maxLag,
      spans,
      drain,
      metrics,
      audit,
      expectedRows: requestsSent.full,
      sessionCalls: readiness + loop.calls,
      verify,
      metricsCalls: sample(last, 'gatehouse_requests_total', { mcp_method: 'tools/call' }),
      scrapeMs,
      scrapeBytes: Buffer.byteLength(last),
    };
  } finally {
    file.close();
    await pool.close();
  }
}

function report(
  results: Map<string, Summary>,
  targets: Target[],
  sustained: Sustained | undefined,
  failures: string[],
): string {
  const lines = [
    ...reportHead(
      'Telemetry run',
      'bench/telemetry.ts',
      `gateways ${targets.map((t) => t.name).join(', ')} in front of one upstream; concurrency ` +
        `${settings.concurrency.join(', ')}; ${settings.rounds} interleaved rounds × ${settings.durationMs / 1000} s ` +
        `(+ ${settleMs / 1000} s settle) after ${settings.warmupMs / 1000} s warm-up per gateway; ` +
        (sustained
          ? `sustained ${rate} calls/s offered for ${sustainedMs / 1000} s to full`
          : 'no sustained phase'),
    ),
    '- bare: `audit.enabled: false`, `metrics.enabled: false`, `tracing.enabled: false`; full: audit to SQLite ' +
      `(defaults otherwise), metrics on (not scraped during rounds), tracing on (sample 1, export_delay ${EXPORT_DELAY}) ` +
      'to a collector process that discards spans; audit, metrics, tracing (when run): that one alone',
    '',
    '### tools/call echo ("relay CPU" is the gateway of the row, its settle time included)',
    '',
    ...ROUND_TABLE,
  ];
  for (const c of settings.concurrency) {
    for (const t of targets) lines.push(roundRow(c, t.name, results.get(`${t.name}@${c}`)!));
  }
  lines.push(
    '',
    '| c | target | gateway CPU ms/call − bare | of it main thread | p99 ms − bare | p99 ms per round | collector CPU ms/call | spans exported per call | other gateways meanwhile, % of a core |',
    '|---:|---|---:|---:|---:|---|---:|---:|---:|',
  );
  for (const c of settings.concurrency) {
    const bare = results.get(`bare@${c}`);
    for (const t of targets) {
      const e = extras.get(`${t.name}@${c}`);
      const r = results.get(`${t.name}@${c}`);
      if (!e || !r) continue;
      const bareExtra = extras.get(`bare@${c}`);
      const minus = (f: (s: Summary) => number, digits: number) =>
        bare && t.name !== 'bare' ? ms(f(r) - f(bare), digits) : '—';
      const mainMinus =
        bareExtra && t.name !== 'bare'
          ? ms(e.mainThreadMs / e.calls - bareExtra.mainThreadMs / bareExtra.calls, 3)
          : '—';
      lines.push(
        `| ${c} | ${t.name} | ${minus((s) => s.relayCpu, 3)} | ${mainMinus} | ${minus((s) => s.p99, 2)} | ` +
          `${e.p99s.map((p) => ms(p)).join(', ')} | ${ms(e.collectorMs / e.calls, 3)} | ` +
          `${(e.spans / e.calls).toFixed(2)} | ${targets.length > 1 ? pct(e.idleMs / e.elapsedMs) : '—'} |`,
      );
    }
  }

  if (sustained) {
    const x = sustained;
    const a = x.audit;
    lines.push(
      '',
      `### Sustained: ${rate} calls/s offered for ${sustainedMs / 1000} s to full (open loop, latency from each call's scheduled time)`,
      '',
      '| calls | errors | sent late (> 10 ms) | achieved calls/s | p50 ms | p99 ms | max ms | gateway CPU ms/call | of it main thread | upstream CPU ms/call | collector CPU ms/call | load gen CPU ms/call | other CPU |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      `| ${x.loop.calls} | ${x.loop.errors} | ${x.loop.late} | ${((x.loop.calls * 1000) / x.loop.elapsedMs).toFixed(0)} | ` +
        `${ms(x.p50)} | ${ms(x.p99)} | ${ms(x.max)} | ${ms(x.gatewayCpu, 3)} | ${ms(x.mainThreadCpu, 3)} | ${ms(x.upstreamCpu, 3)} | ` +
        `${ms(x.collectorCpu, 3)} | ${ms(x.loadCpu, 3)} | ${pct(x.otherShare)} |`,
      '',
      `- audit: at most ${x.maxLag} answered calls not yet in SQLite during the phase (sampled every 250 ms); ` +
        `${x.drain.drained ? 'every record in SQLite' : '**records missing**'} ${ms(x.drain.ms, 0)} ms after the last answer; ` +
        `then metrics: ${x.metrics.written} written, queue ${x.metrics.queueDepth}, spool ${x.metrics.backlog}, ` +
        `dropped ${x.metrics.dropped}, lost ${x.metrics.lost}`,
      `- SQLite \`audit_log\`: ${a.rows} rows (last seq ${a.lastSeq}) for ${x.expectedRows} requests sent to full in the ` +
        `whole run (${callsSent.full} tools/call + ${x.expectedRows - callsSent.full} initialize); ${a.gaps} gap records; ` +
        `${a.notOk} not ok; by method: ${a.byMethod}`,
      `- \`gatehouse audit verify\`: exit ${x.verify.code}: ${x.verify.output.replaceAll('\n', ' / ')}`,
      `- tracing: ${x.spans} spans received for ${x.loop.calls} calls (${(x.spans / x.loop.calls).toFixed(2)} per call; ` +
        `${SPANS_PER_CALL} expected)`,
      `- metrics: \`gatehouse_requests_total{mcp_method="tools/call"}\` = ${x.metricsCalls} for ${callsSent.full} ` +
        `calls sent; one scrape of /metrics: ${ms(x.scrapeMs)} ms, ${(x.scrapeBytes / 1024).toFixed(1)} KiB`,
    );
  }
  lines.push(
    ...disturbance(
      [...results.values(), ...(sustained ? [sustained] : [])].map((s) => s.otherShare),
      'rounds',
    ),
  );
  if (failures.length > 0) lines.push('', ...failures.map((f) => `- ${f}`));

  const bare16 = results.get('bare@16');
  const full16 = results.get('full@16');
  const roundErrors = [...results.values()].reduce((n, s) => n + s.errors, 0);
  const errors = roundErrors + (sustained?.loop.errors ?? 0);
  lines.push('', ...CHECK_TABLE);
  if (bare16 && full16) {
    const delta = full16.relayCpu - bare16.relayCpu;
    lines.push(
      `| gateway CPU per call full − bare at c16 | ${ms(delta, 3)} ms | ≤ ${CPU_TARGET_MS} ms | ${verdict(delta <= CPU_TARGET_MS)} |`,
    );
  } else
    lines.push(
      `| gateway CPU per call full − bare at c16 | — | ≤ ${CPU_TARGET_MS} ms | n/a (needs both at c16) |`,
    );
  for (const c of settings.concurrency) {
    const bare = results.get(`bare@${c}`);
    const full = results.get(`full@${c}`);
    const bareP99s = extras.get(`bare@${c}`)?.p99s ?? [];
    if (!bare || !full) continue;
    lines.push(
      `| p99 full − bare at c${c} (orientation; bare's p99 per round ${ms(Math.min(...bareP99s))}–${ms(Math.max(...bareP99s))} ms) | ` +
        `${ms(full.p99 - bare.p99, 3)} ms | — | — |`,
    );
  }
  if (sustained) {
    const x = sustained;
    const achieved = (x.loop.calls * 1000) / x.loop.elapsedMs;
    const rowsOk = x.audit.sessionCalls === x.sessionCalls && x.audit.gaps === 0;
    const allOk = x.audit.rows === x.expectedRows && x.audit.lastSeq === x.audit.rows;
    lines.push(
      `| sustained audited calls/s (${rate}/s offered for ${sustainedMs / 1000} s) | ${achieved.toFixed(0)} | ≥ ${RATE_TARGET} | ${verdict(achieved >= RATE_TARGET)} |`,
      `| audit rows of the sustained session = its calls, no gap record | ${x.audit.sessionCalls} / ${x.sessionCalls}, ${x.audit.gaps} gaps | equal, 0 | ${verdict(rowsOk)} |`,
      `| audit rows in all = requests sent to full, seq without holes | ${x.audit.rows} / ${x.expectedRows} | equal | ${verdict(allOk)} |`,
      `| \`gatehouse audit verify\` | exit ${x.verify.code} | OK (0) | ${verdict(x.verify.code === 0 && x.verify.output.includes('OK'))} |`,
    );
  } else
    lines.push(
      '| sustained phase, audit rows, verify | — | — | n/a (not run: needs --sustained > 0 and target full) |',
    );
  lines.push(`| failed calls | ${errors} | 0 | ${verdict(errors === 0)} |`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  let collector: Collector | undefined;
  if (settings.targets.some((t) => FEATURES[t].tracing)) {
    const { child, port } = await launch(
      'collector',
      (p) => ['bench/otlp-sink.ts', '--port', String(p)],
      root,
      STARTUP_TIMEOUT_MS,
    );
    const base = `http://127.0.0.1:${port}`;
    collector = {
      child,
      url: `${base}/v1/traces`,
      stats: async () => (await (await fetch(`${base}/stats`)).json()) as { requests: number; spans: number },
    };
  }
  const upstream = await launch(
    'upstream',
    (port) => ['bench/upstream.ts', '--port', String(port)],
    root,
    STARTUP_TIMEOUT_MS,
  );
  const upstreamUrl = new URL(`http://127.0.0.1:${upstream.port}/mcp`);

  const targets: Target[] = [];
  for (const name of settings.targets) {
    let files: GatewayFiles | undefined;
    const { child } = await launch(
      name,
      (port) => {
        files = gatewayConfig(name, upstreamUrl, port, collector?.url ?? '');
        return ['src/cli/main.ts', 'serve', '-c', files.config];
      },
      root,
      STARTUP_TIMEOUT_MS,
    );
    const gateway = { ...files!, child };
    const s = await session(name, gateway);
    await waitForEcho(name, s);
    targets.push({ name, session: s, gateway });
    log(`${name} gateway pid ${child.pid}: session open on ${gateway.base}/mcp`);
  }

  // The bare gateway must really have metrics off, the full one on.
  const failures: string[] = [];
  for (const t of targets) {
    const res = await fetch(`${t.gateway.base}/metrics`);
    await res.arrayBuffer();
    if ((res.status === 200) !== FEATURES[t.name].metrics) {
      failures.push(`${t.name} gateway: GET /metrics answered ${res.status}, against its configuration`);
    }
  }

  const results = await measureInterleaved(
    targets,
    settings,
    (t, pool, c) => measureCallRound(t, pool, c, targets, upstream.child, collector),
    (t, _c, warm) => {
      requestsSent[t.name] += warm.calls;
      callsSent[t.name] += warm.calls;
    },
  );

  const full = targets.find((t) => t.name === 'full');
  const sustained =
    full && collector && sustainedMs > 0
      ? await sustainedPhase(
          full,
          targets.filter((t) => t !== full).map((t) => t.gateway.child),
          upstream.child,
          collector,
        )
      : undefined;

  writeReport(values.out, report(results, targets, sustained, failures));
  const errors =
    [...results.values()].reduce((n, s) => n + s.errors, 0) + (sustained ? sustained.loop.errors : 0);
  if (errors > 0)
    log(`${errors} calls failed: see the errors columns (a missed target, not a harness failure)`);
  return 0;
}

runBenchmark(main);
