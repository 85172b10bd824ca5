// The catalogue benchmark (`npm run bench:catalog`): tools/list of an aggregated catalogue (50 × 20 and
// 200 × 50 tools) through Gatehouse once warm, and tools/call on a route of several upstreams against a
// route of one, in interleaved rounds. See bench/README.md.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'undici';
import {
  type CallRound,
  type ListedTool,
  type Listing,
  type ListRound,
  listAll,
  type PlannedCall,
  runCallRound,
  runListRound,
} from './catalog-load.ts';
import {
  CHECK_TABLE,
  disturbance,
  fail,
  flags,
  loadCpu,
  ms,
  rateCells,
  reportHead,
  root,
  runBenchmark,
  scratchDir,
  throughput,
  verdict,
  writeReport,
} from './cli.ts';
import { callAnswer, sampleArguments } from './fixture-tools.ts';
import { createPool, openSession, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch, stopAndWait } from './processes.ts';
import { pct, percentile } from './summary.ts';

const PAGE_P99_TARGET_MS = 5;
const CALL_RATIO_TARGET = 0.9;
/** Synthetic tools per upstream in the tools/call part (each upstream also has `echo`, not called). */
const CALL_TOOLS = 20;
const UPSTREAM_START_MS = 20_000;
const GATEWAY_START_MS = 60_000;
const POLL_MS = 250;

const values = flags({
  sizes: '50x20,200x50',
  'list-concurrency': '1,8',
  'call-concurrency': '16',
  fanout: '10',
  rounds: '3',
  duration: '3',
  warmup: '1',
  prefix: 'always',
  'page-size': '',
  'upstream-page-size': '0',
  'ready-timeout': '120',
  parts: 'list,call',
  out: join(root, 'bench/out/catalog.md'),
});

const numbers = (s: string) => s.split(',').map((x) => Number(x.trim()));
const positiveInt = (n: number) => Number.isInteger(n) && n > 0;
const sizes = values.sizes.split(',').map((s) => {
  const m = /^\s*(\d+)x(\d+)\s*$/.exec(s);
  if (m === null || !positiveInt(Number(m[1])) || !positiveInt(Number(m[2]))) {
    fail(`--sizes: '${s}' is not <upstreams>x<tools per upstream>, e.g. 50x20`);
  }
  return { servers: Number(m[1]), tools: Number(m[2]) };
});
const parts = new Set(values.parts.split(',').map((p) => p.trim()));
for (const p of parts) if (p !== 'list' && p !== 'call') fail(`--parts: unknown part '${p}' (list, call)`);
// Every upstream serves the same tool names, so `never` would hide all but one upstream's tools.
if (!['always', 'on-conflict'].includes(values.prefix)) fail('--prefix must be always or on-conflict');
const settings = {
  listConcurrency: numbers(values['list-concurrency']),
  callConcurrency: numbers(values['call-concurrency']),
  fanout: Number(values.fanout),
  rounds: Number(values.rounds),
  durationMs: Number(values.duration) * 1000,
  warmupMs: Number(values.warmup) * 1000,
  pageSize: values['page-size'] === '' ? undefined : Number(values['page-size']),
  upstreamPageSize: Number(values['upstream-page-size']),
  readyTimeoutMs: Number(values['ready-timeout']) * 1000,
};
if (
  ![...settings.listConcurrency, ...settings.callConcurrency, settings.fanout, settings.rounds].every(
    positiveInt,
  )
) {
  fail('--list-concurrency, --call-concurrency, --fanout and --rounds must be positive integers');
}
if (!(settings.durationMs > 0 && settings.warmupMs >= 0 && settings.readyTimeoutMs > 0)) {
  fail('--duration and --ready-timeout must be positive numbers of seconds, --warmup zero or more');
}
if (settings.pageSize !== undefined && !positiveInt(settings.pageSize))
  fail('--page-size must be a positive integer');
if (!(Number.isInteger(settings.upstreamPageSize) && settings.upstreamPageSize >= 0)) {
  fail('--upstream-page-size must be an integer ≥ 0 (0: the upstream answers in one page)');
}

const log = (message: string) => console.error(message);

// --- processes -------------------------------------------------------------------------------------------

/** A gateway route over upstreams `u<i>` (= /mcp/<i> of the upstream process). */
type RouteSpec = { path: string; upstreams: number[] };
type Stack = { upstream: Child; gateway: Child; gatewayPort: number };

function writeGatewayConfig(
  port: number,
  upstreamPort: number,
  servers: number,
  routes: RouteSpec[],
): string {
  const file = join(scratchDir('gatehouse-catalog-'), `gatehouse-${port}.yaml`);
  const lines = [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    'log: { level: warn }',
    'health: { interval: 30s }',
    'upstreams:',
  ];
  for (let i = 0; i < servers; i++) {
    lines.push(`  u${i}: { type: streamable-http, url: http://127.0.0.1:${upstreamPort}/mcp/${i} }`);
  }
  lines.push('routes:');
  for (const r of routes) {
    lines.push(
      `  - path: ${r.path}`,
      `    upstreams: [${r.upstreams.map((i) => `u${i}`).join(', ')}]`,
      `    tools: { prefix: ${values.prefix} }`,
    );
    if (settings.pageSize !== undefined) lines.push(`    page_size: ${settings.pageSize}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function startStack(servers: number, tools: number, routes: RouteSpec[]): Promise<Stack> {
  const upstream = await launch(
    'upstream',
    (port) => [
      'bench/upstream.ts',
      '--port',
      String(port),
      '--servers',
      String(servers),
      '--tools',
      String(tools),
      '--page-size',
      String(settings.upstreamPageSize),
    ],
    root,
    UPSTREAM_START_MS,
  );
  try {
    const gateway = await launch(
      'gateway',
      (port) => [
        ...(process.env.GW_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof/cat'] : []),
        'src/cli/main.ts',
        'serve',
        '-c',
        writeGatewayConfig(port, upstream.port, servers, routes),
      ],
      root,
      GATEWAY_START_MS,
    );
    return { upstream: upstream.child, gateway: gateway.child, gatewayPort: gateway.port };
  } catch (err) {
    await stopAndWait(upstream.child);
    throw err;
  }
}

async function stopStack(stack: Stack): Promise<void> {
  await stopAndWait(stack.gateway);
  await stopAndWait(stack.upstream);
}

/** Opens a session on `path` and lists until the catalogue holds `expected` distinct tools (it warms in the
 *  background); throws when it does not within --ready-timeout. */
async function openWarm(
  stack: Stack,
  path: string,
  expected: number,
  pool: (session: Session) => Pool,
): Promise<{ session: Session; pool: Pool; listing: Listing; initMs: number; completeMs: number }> {
  const t0 = performance.now();
  const session = await openSession(new URL(`http://127.0.0.1:${stack.gatewayPort}${path}`));
  const initMs = performance.now() - t0;
  const p = pool(session);
  const deadline = t0 + settings.readyTimeoutMs;
  let last = 'no answer yet';
  for (;;) {
    try {
      const listing = await listAll(p, session);
      const distinct = new Set(listing.tools.map((t) => t.name)).size;
      if (listing.tools.length === expected && distinct === expected) {
        return { session, pool: p, listing, initMs, completeMs: performance.now() - t0 };
      }
      last = `${listing.tools.length} tools (${distinct} distinct names) in ${listing.pages} page(s)`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (performance.now() > deadline) {
      await p.close();
      throw new Error(
        `${path}: the catalogue did not reach ${expected} tools within ${settings.readyTimeoutMs / 1000} s; last: ${last}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** CPU spent by the gateway, the upstream process, this process and the rest of the machine during `run`. */
async function withCpu<T>(stack: Stack, run: () => Promise<T>) {
  const gateway0 = cpuTimeMs(stack.gateway.pid);
  const upstream0 = cpuTimeMs(stack.upstream.pid);
  const { value, loadMs, machineMs } = await loadCpu(run);
  const gatewayMs = cpuTimeMs(stack.gateway.pid) - gateway0;
  const upstreamMs = cpuTimeMs(stack.upstream.pid) - upstream0;
  const otherMs = Math.max(0, machineMs - gatewayMs - upstreamMs - loadMs);
  return { value, cpu: { gatewayMs, upstreamMs, loadMs, otherMs } };
}
type CpuSpent = { gatewayMs: number; upstreamMs: number; loadMs: number; otherMs: number };

// --- tools/list ------------------------------------------------------------------------------------------

type ListSummary = {
  concurrency: number;
  listsPerS: number;
  pagesPerList: number;
  page: { p50: number; p99: number; max: number };
  list: { p50: number; p99: number; max: number };
  lists: number;
  errors: number;
  firstError: string | undefined;
  gatewayCpuPerPage: number;
  upstreamCpuPerList: number;
  loadCpuPerPage: number;
  otherShare: number;
};

type CatalogueResult = {
  servers: number;
  tools: number;
  expected: number;
  pages: number;
  initMs: number;
  completeMs: number;
  runs: ListSummary[];
};

function distribution(latencies: number[]) {
  const sorted = Float64Array.from(latencies).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
}

async function catalogue(servers: number, tools: number): Promise<CatalogueResult> {
  // Every upstream also serves `echo`, so the catalogue holds servers × (tools + 1) tools.
  const expected = servers * (tools + 1);
  log(`catalogue ${servers} × ${tools}: starting the upstream and the gateway`);
  const stack = await startStack(servers, tools, [
    { path: '/mcp', upstreams: Array.from({ length: servers }, (_, i) => i) },
  ]);
  try {
    const connections = Math.max(...settings.listConcurrency);
    const warm = await openWarm(stack, '/mcp', expected, (s) => createPool(s, connections));
    log(
      `catalogue ${servers} × ${tools}: ${expected} tools in ${warm.listing.pages} pages after ` +
        `${(warm.completeMs / 1000).toFixed(1)} s (initialize ${warm.initMs.toFixed(0)} ms)`,
    );
    const runs: ListSummary[] = [];
    for (const c of settings.listConcurrency) {
      await runListRound(warm.pool, warm.session, c, settings.warmupMs, expected);
      const m = await withCpu(stack, () =>
        runListRound(warm.pool, warm.session, c, settings.durationMs, expected),
      );
      runs.push(summariseList(c, m.value, m.cpu));
      log(
        `catalogue ${servers} × ${tools} c=${c}: ${((m.value.lists * 1000) / m.value.elapsedMs).toFixed(1)} lists/s, ` +
          `${m.value.errors} errors${m.value.firstError ? ` (first: ${m.value.firstError})` : ''}`,
      );
    }
    await warm.pool.close();
    return {
      servers,
      tools,
      expected,
      pages: warm.listing.pages,
      initMs: warm.initMs,
      completeMs: warm.completeMs,
      runs,
    };
  } finally {
    await stopStack(stack);
  }
}

function summariseList(concurrency: number, r: ListRound, cpu: CpuSpent): ListSummary {
  return {
    concurrency,
    listsPerS: (r.lists * 1000) / r.elapsedMs,
    pagesPerList: r.pages / Math.max(1, r.lists),
    page: distribution(r.pageLatenciesMs),
    list: distribution(r.listLatenciesMs),
    lists: r.lists,
    errors: r.errors,
    firstError: r.firstError,
    gatewayCpuPerPage: cpu.gatewayMs / Math.max(1, r.pages),
    upstreamCpuPerList: cpu.upstreamMs / Math.max(1, r.lists),
    loadCpuPerPage: cpu.loadMs / Math.max(1, r.pages),
    otherShare: cpu.otherMs / (r.elapsedMs * cpus().length),
  };
}

// --- tools/call ------------------------------------------------------------------------------------------

const PREFIXED = /^(.+?)__(.+)$/;
const UPSTREAM_NAME = /^u(\d+)$/;

/** Calls to every synthetic tool the route lists, ordered so that consecutive calls go to different
 *  upstreams; each expects the answer of the upstream the tool's name designates. */
function planCalls(route: RouteSpec, tools: ListedTool[]): PlannedCall[] {
  const byUpstream = new Map<number, PlannedCall[]>(route.upstreams.map((i) => [i, []]));
  for (const tool of tools) {
    const m = PREFIXED.exec(tool.name);
    const base = m === null ? tool.name : m[2]!;
    if (!base.startsWith('tool_')) continue;
    const named = m === null ? undefined : UPSTREAM_NAME.exec(m[1]!);
    const upstream = named ? Number(named[1]) : route.upstreams.length === 1 ? route.upstreams[0] : undefined;
    const calls = upstream === undefined ? undefined : byUpstream.get(upstream);
    if (upstream === undefined || calls === undefined) {
      throw new Error(`${route.path}: cannot tell which upstream serves the tool '${tool.name}'`);
    }
    const params = { name: tool.name, arguments: sampleArguments(tool.inputSchema ?? {}) };
    calls.push({ params: JSON.stringify(params), expect: callAnswer(upstream, base) });
  }
  const lists = [...byUpstream.values()];
  if (lists.some((l) => l.length !== CALL_TOOLS)) {
    throw new Error(
      `${route.path}: expected ${CALL_TOOLS} tools of each upstream, got ${lists.map((l) => l.length)}`,
    );
  }
  return Array.from({ length: CALL_TOOLS }, (_, j) => lists.map((l) => l[j]!)).flat();
}

type CallSummary = {
  route: RouteSpec;
  concurrency: number;
  rps: number;
  minRps: number;
  maxRps: number;
  p50: number;
  p99: number;
  calls: number;
  errors: number;
  firstError: string | undefined;
  gatewayCpu: number;
  upstreamCpu: number;
  loadCpu: number;
  otherShare: number;
};

type MeasuredCallRound = CallRound & CpuSpent;

async function callComparison(): Promise<CallSummary[]> {
  const fanout = settings.fanout;
  const routes: RouteSpec[] = [
    { path: '/one', upstreams: [0] },
    { path: '/fan', upstreams: Array.from({ length: fanout }, (_, i) => i) },
  ];
  log(`tools/call: starting ${upstreams(fanout)} and a gateway with routes /one (1) and /fan (${fanout})`);
  const stack = await startStack(fanout, CALL_TOOLS, routes);
  try {
    const connections = Math.max(...settings.callConcurrency);
    const targets = [];
    for (const route of routes) {
      const expected = route.upstreams.length * (CALL_TOOLS + 1);
      const warm = await openWarm(stack, route.path, expected, (s) => createPool(s, connections));
      targets.push({
        route,
        session: warm.session,
        pool: warm.pool,
        plan: planCalls(route, warm.listing.tools),
      });
    }
    const summaries: CallSummary[] = [];
    for (const c of settings.callConcurrency) {
      for (const t of targets) await runCallRound(t.pool, t.session, t.plan, c, settings.warmupMs);
      const rounds = new Map<string, MeasuredCallRound[]>(targets.map((t) => [t.route.path, []]));
      for (let i = 1; i <= settings.rounds; i++) {
        for (const t of targets) {
          const m = await withCpu(stack, () =>
            runCallRound(t.pool, t.session, t.plan, c, settings.durationMs),
          );
          rounds.get(t.route.path)!.push({ ...m.value, ...m.cpu });
          log(
            `tools/call c=${c} round ${i}/${settings.rounds} ${t.route.path}: ` +
              `${((m.value.calls * 1000) / m.value.elapsedMs).toFixed(0)} req/s, ${m.value.errors} errors` +
              (m.value.firstError ? ` (first: ${m.value.firstError})` : ''),
          );
        }
      }
      for (const t of targets) summaries.push(summariseCalls(t.route, c, rounds.get(t.route.path)!));
    }
    await Promise.all(targets.map((t) => t.pool.close()));
    return summaries;
  } finally {
    await stopStack(stack);
  }
}

function summariseCalls(route: RouteSpec, concurrency: number, rounds: MeasuredCallRound[]): CallSummary {
  const total = (f: (r: MeasuredCallRound) => number) => rounds.reduce((n, r) => n + f(r), 0);
  const { elapsedMs, ...t } = throughput(rounds);
  return {
    route,
    concurrency,
    ...t,
    firstError: rounds.find((r) => r.firstError !== undefined)?.firstError,
    gatewayCpu: total((r) => r.gatewayMs) / t.calls,
    upstreamCpu: total((r) => r.upstreamMs) / t.calls,
    loadCpu: total((r) => r.loadMs) / t.calls,
    otherShare: total((r) => r.otherMs) / (elapsedMs * cpus().length),
  };
}

// --- report ----------------------------------------------------------------------------------------------

const count = (n: number) => n.toLocaleString('en-US');
const upstreams = (n: number) => (n === 1 ? '1 upstream' : `${n} upstreams`);

function report(catalogues: CatalogueResult[], calls: CallSummary[], failures: string[]): string {
  const lines = [
    ...reportHead(
      'Catalogue run',
      'bench/catalog.ts',
      [
        parts.has('list') &&
          `tools/list of catalogues ${sizes.map((s) => `${s.servers}×${s.tools}`).join(', ')} at concurrency ` +
            `${settings.listConcurrency.join(', ')} (${settings.warmupMs / 1000} s warm-up + ${settings.durationMs / 1000} s each)`,
        parts.has('call') &&
          `tools/call on 1 upstream vs ${upstreams(settings.fanout)} at concurrency ${settings.callConcurrency.join(', ')}, ` +
            `${settings.rounds} interleaved rounds × ${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up`,
        `prefix ${values.prefix}; gateway page size ${settings.pageSize ?? 'default'}; ` +
          `upstream page size ${settings.upstreamPageSize || 'all'}`,
      ]
        .filter(Boolean)
        .join('; '),
    ),
    ...failures.map((f) => `- **${f}**`),
  ];
  const checks: string[] = [];

  if (catalogues.length > 0) {
    lines.push(
      '',
      '### tools/list of the whole catalogue',
      '',
      'A list = every page, one after the other (following `nextCursor`); page = one `tools/list` request, timed from sending it to its last byte received (the client’s parsing of the page is excluded; at c8 the 2 cores are shared with that parsing, which still delays reading).',
      '',
      '| catalogue | tools | pages | initialize ms | complete after s | c | lists/s | page p50 ms | page p99 ms | page max ms | list p50 ms | list p99 ms | list max ms | lists | errors | gateway CPU ms/page | upstream CPU ms/list | load gen CPU ms/page | other CPU |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const k of catalogues) {
      for (const r of k.runs) {
        lines.push(
          `| ${k.servers} × ${k.tools} | ${count(k.expected)} | ${ms(r.pagesPerList, 1)} | ${ms(k.initMs, 0)} | ` +
            `${ms(k.completeMs / 1000, 1)} | ${r.concurrency} | ${ms(r.listsPerS, 1)} | ${ms(r.page.p50)} | ${ms(r.page.p99)} | ` +
            `${ms(r.page.max)} | ${ms(r.list.p50)} | ${ms(r.list.p99)} | ${ms(r.list.max)} | ${r.lists} | ${r.errors} | ` +
            `${ms(r.gatewayCpuPerPage, 3)} | ${ms(r.upstreamCpuPerList, 3)} | ${ms(r.loadCpuPerPage, 3)} | ${pct(r.otherShare)} |`,
        );
        checks.push(
          `| tools/list page p99, ${count(k.expected)} tools, c${r.concurrency} | ${ms(r.page.p99)} ms | ≤ ${PAGE_P99_TARGET_MS} ms | ` +
            `${verdict(r.errors === 0 && r.page.p99 <= PAGE_P99_TARGET_MS)} |`,
        );
      }
    }
    const errors = catalogues.flatMap((k) => k.runs.filter((r) => r.firstError !== undefined));
    for (const r of errors) lines.push('', `First list error at c${r.concurrency}: \`${r.firstError}\``);
  }

  if (calls.length > 0) {
    lines.push(
      '',
      '### tools/call: one upstream vs several behind one route',
      '',
      `Calls go round-robin over the ${CALL_TOOLS} synthetic tools of every upstream of the route, each answer checked for the upstream that sent it.`,
      '',
      '| c | route | upstreams | tools called | req/s | req/s per round | p50 ms | p99 ms | calls | errors | gateway CPU ms/call | upstream CPU ms/call | load gen CPU ms/call | other CPU |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of calls) {
      lines.push(
        `| ${s.concurrency} | ${s.route.path} | ${s.route.upstreams.length} | ${s.route.upstreams.length * CALL_TOOLS} | ` +
          `${rateCells(s)} | ${s.calls} | ` +
          `${s.errors} | ${ms(s.gatewayCpu, 3)} | ${ms(s.upstreamCpu, 3)} | ${ms(s.loadCpu, 3)} | ${pct(s.otherShare)} |`,
      );
    }
    for (const s of calls)
      if (s.firstError) lines.push('', `First call error on ${s.route.path}: \`${s.firstError}\``);
    for (const c of settings.callConcurrency) {
      const one = calls.find((s) => s.concurrency === c && s.route.path === '/one');
      const fan = calls.find((s) => s.concurrency === c && s.route.path === '/fan');
      if (one === undefined || fan === undefined) continue;
      const n = fan.route.upstreams.length;
      checks.push(
        `| tools/call throughput, ${upstreams(n)} / 1 upstream, c${c} | ${pct(fan.rps / one.rps)} | ≥ ${pct(CALL_RATIO_TARGET)} | ` +
          `${verdict(fan.errors === 0 && fan.rps / one.rps >= CALL_RATIO_TARGET)} |`,
        `| gateway CPU per call, ${upstreams(n)} / 1 upstream, c${c} (orientation) | ${(fan.gatewayCpu / one.gatewayCpu).toFixed(2)}× | — | — |`,
      );
    }
  }

  const others = [
    ...catalogues.flatMap((k) => k.runs.map((r) => r.otherShare)),
    ...calls.map((s) => s.otherShare),
  ];
  lines.push(...disturbance(others, 'measurements'));
  if (checks.length > 0) {
    lines.push('', ...CHECK_TABLE, ...checks);
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const failures: string[] = [];
  const catalogues: CatalogueResult[] = [];
  let calls: CallSummary[] = [];
  const attempt = async (what: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      const message = `${what}: FAILED — ${(err as Error).message}`;
      log(`\n${message}\n`);
      failures.push(message.split('\n')[0]!);
    }
  };
  if (parts.has('list')) {
    for (const s of sizes) {
      await attempt(`catalogue ${s.servers} × ${s.tools}`, async () => {
        catalogues.push(await catalogue(s.servers, s.tools));
      });
    }
  }
  if (parts.has('call')) {
    await attempt(`tools/call on ${upstreams(settings.fanout)}`, async () => {
      calls = await callComparison();
    });
  }
  writeReport(values.out, report(catalogues, calls, failures));
  const errors =
    catalogues.reduce((n, k) => n + k.runs.reduce((m, r) => m + r.errors, 0), 0) +
    calls.reduce((n, s) => n + s.errors, 0);
  if (errors > 0) log(`${errors} lists or calls failed: see the errors columns`);
  return errors > 0 || failures.length > 0 ? 1 : 0;
}

runBenchmark(main);
