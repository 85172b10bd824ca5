// The auth benchmark (`npm run bench:auth`): what OAuth 2.1 token checks and per-tool ACLs cost on a
// `tools/call`, and on a per-caller filtered `tools/list`. One gateway, two routes in front of the same
// upstream: /open (no auth, no ACL) and /secure (JWT from an in-process IdP + ACL). See bench/README.md.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'undici';
import { startIdp } from '../test/fixtures/idp.ts';
import { runListRound } from './catalog-load.ts';
import {
  CHECK_TABLE,
  disturbance,
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
  scratchDir,
  verdict,
  writeReport,
} from './cli.ts';
import { createPool, openSession, PROTOCOL_VERSION, runRound, type Session } from './load.ts';
import { type Child, cpuTimeMs, launch } from './processes.ts';
import { percentile } from './summary.ts';

const ROUTES = ['open', 'secure'] as const;
type RouteName = (typeof ROUTES)[number];

const values = flags({
  targets: ROUTES.join(','),
  concurrency: '1,16',
  rounds: '3',
  duration: '3',
  warmup: '1',
  out: join(root, 'bench/out/auth.md'),
});
const settings = roundSettings(ROUTES, values);
const STARTUP_TIMEOUT_MS = 20_000;
const READY_TIMEOUT_MS = 30_000;
const AUDIENCE = 'https://bench.example/secure';
/** `echo` + 999 synthetic tools. */
const SYNTHETIC_TOOLS = 999;
const EXPECTED_TOOLS = SYNTHETIC_TOOLS + 1;
const CPU_TARGET_MS = 0.1;
const LIST_P99_TARGET_MS = 5;

type Target = { name: RouteName; session: Session };

const log = (message: string) => console.error(message);

function gatewayConfig(upstreamUrl: URL, port: number, issuer: string, jwksUri: string): string {
  const file = join(scratchDir('gatehouse-bench-auth-'), 'gatehouse.yaml');
  writeFileSync(
    file,
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      'log: { level: warn }',
      'upstreams:',
      `  bench: { type: streamable-http, url: ${upstreamUrl.href} }`,
      'routes:',
      '  - path: /open',
      '    upstreams: [bench]',
      '    tools: { prefix: never }',
      '  - path: /secure',
      '    upstreams: [bench]',
      '    tools: { prefix: never }',
      `    auth: { oauth: { issuer: "${issuer}", jwks_uri: "${jwksUri}", audience: "${AUDIENCE}" } }`,
      '    acl: { default: { allow: [bench] }, tools: { "bench:echo": { allow: [bench] } } }',
      '',
    ].join('\n'),
  );
  return file;
}

/** The /secure route must refuse a request without a token: otherwise the benchmark measures nothing. */
async function assertRefusedWithoutToken(url: URL): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'x', version: '0' },
      },
    }),
  });
  await res.text();
  if (res.status !== 401) throw new Error(`/secure answered ${res.status} without a token, expected 401`);
}

/** Lists the whole catalogue until it holds every tool (the gateway warms it in the background). */
async function waitForCatalogue(session: Session): Promise<void> {
  const pool = createPool(session, 1);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (;;) {
      const r = await runListRound(pool, session, 1, 1, EXPECTED_TOOLS);
      if (r.errors === 0) return;
      if (Date.now() > deadline) throw new Error(`catalogue not complete: ${r.firstError ?? '?'}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await pool.close();
  }
}

async function measureCallRound(
  t: Target,
  pool: Pool,
  c: number,
  gateway: Child,
  upstream: Child,
): Promise<Round> {
  const gateway0 = cpuTimeMs(gateway.pid);
  const upstream0 = cpuTimeMs(upstream.pid);
  const m = await loadCpu(() => runRound(pool, t.session, c, settings.durationMs));
  const relayCpuMs = cpuTimeMs(gateway.pid) - gateway0;
  const upstreamCpuMs = cpuTimeMs(upstream.pid) - upstream0;
  const otherCpuMs = Math.max(0, m.machineMs - relayCpuMs - upstreamCpuMs - m.loadMs);
  return { ...m.value, relayCpuMs, upstreamCpuMs, loadCpuMs: m.loadMs, otherCpuMs };
}

type ListResult = {
  route: RouteName;
  pages: number;
  lists: number;
  errors: number;
  firstError: string | undefined;
  p50: number;
  p99: number;
  max: number;
  gatewayCpuPerPage: number;
};

/** tools/list at c1, the whole catalogue page after page: a warm-up, then one measured round. */
async function measureList(t: Target, gateway: Child): Promise<ListResult> {
  const pool = createPool(t.session, 1);
  try {
    await runListRound(pool, t.session, 1, settings.warmupMs, EXPECTED_TOOLS);
    const gateway0 = cpuTimeMs(gateway.pid);
    const r = await runListRound(pool, t.session, 1, settings.durationMs, EXPECTED_TOOLS);
    const gatewayMs = cpuTimeMs(gateway.pid) - gateway0;
    const sorted = Float64Array.from(r.pageLatenciesMs).sort();
    log(`tools/list c=1 ${t.name}: ${r.lists} lists, ${r.pages} pages, ${r.errors} errors`);
    return {
      route: t.name,
      pages: r.pages,
      lists: r.lists,
      errors: r.errors,
      firstError: r.firstError,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted.at(-1) ?? Number.NaN,
      gatewayCpuPerPage: gatewayMs / Math.max(1, r.pages),
    };
  } finally {
    await pool.close();
  }
}

function report(
  results: Awaited<ReturnType<typeof measureInterleaved>>,
  targets: Target[],
  lists: ListResult[],
): string {
  const lines = [
    ...reportHead(
      'Auth run',
      'bench/auth.ts',
      `routes ${targets.map((t) => t.name).join(', ')} of one gateway; upstream with ${EXPECTED_TOOLS} tools; ` +
        `concurrency ${settings.concurrency.join(', ')}; ${settings.rounds} interleaved rounds × ` +
        `${settings.durationMs / 1000} s after ${settings.warmupMs / 1000} s warm-up per route`,
    ),
    '',
    '### tools/call echo ("relay CPU" is the gateway)',
    '',
    ...ROUND_TABLE,
  ];
  for (const c of settings.concurrency) {
    for (const t of targets) lines.push(roundRow(c, `/${t.name}`, results.get(`${t.name}@${c}`)!));
  }
  lines.push(
    '',
    `### tools/list at c1, ${EXPECTED_TOOLS} tools, one round of ${settings.durationMs / 1000} s`,
    '',
    '| route | lists | pages | errors | page p50 ms | page p99 ms | page max ms | gateway CPU ms/page |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...lists.map(
      (l) =>
        `| /${l.route} | ${l.lists} | ${l.pages} | ${l.errors} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} | ${ms(l.gatewayCpuPerPage, 3)} |`,
    ),
    ...lists.filter((l) => l.firstError).map((l) => `- /${l.route} first list error: ${l.firstError}`),
  );
  lines.push(
    ...disturbance(
      [...results.values()].map((s) => s.otherShare),
      'rounds',
    ),
  );

  const open16 = results.get('open@16');
  const secure16 = results.get('secure@16');
  const secureList = lists.find((l) => l.route === 'secure');
  const errors =
    [...results.values()].reduce((n, s) => n + s.errors, 0) + lists.reduce((n, l) => n + l.errors, 0);
  const na = '| n/a (needs both routes at c16) |';
  lines.push('', ...CHECK_TABLE);
  if (open16 && secure16) {
    const delta = secure16.relayCpu - open16.relayCpu;
    lines.push(
      `| gateway CPU per call /secure − /open at c16 | ${ms(delta, 3)} ms | ≤ ${CPU_TARGET_MS} ms | ${verdict(delta <= CPU_TARGET_MS)} |`,
      `| p50 /secure − /open at c16 (orientation) | ${ms(secure16.p50 - open16.p50, 3)} ms | — | — |`,
    );
  } else lines.push(`| gateway CPU per call /secure − /open at c16 | — | ≤ ${CPU_TARGET_MS} ms ${na}`);
  lines.push(
    secureList
      ? `| /secure tools/list page p99 at c1 (${EXPECTED_TOOLS} tools, filtered per caller) | ${ms(secureList.p99)} ms | ≤ ${LIST_P99_TARGET_MS} ms | ${verdict(secureList.p99 <= LIST_P99_TARGET_MS)} |`
      : `| /secure tools/list page p99 at c1 | — | ≤ ${LIST_P99_TARGET_MS} ms | n/a (/secure not run) |`,
    `| failed calls and lists | ${errors} | 0 | ${verdict(errors === 0)} |`,
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const idp = await startIdp();
  try {
    const token = await idp.token({
      sub: 'bench-user',
      groups: ['bench'],
      resource: AUDIENCE,
      expiresIn: 3600,
    });
    const upstream = await launch(
      'upstream',
      (port) => ['bench/upstream.ts', '--port', String(port), '--tools', String(SYNTHETIC_TOOLS)],
      root,
      STARTUP_TIMEOUT_MS,
    );
    const upstreamUrl = new URL(`http://127.0.0.1:${upstream.port}/mcp`);
    const gateway = await launch(
      'gateway',
      (port) => ['src/cli/main.ts', 'serve', '-c', gatewayConfig(upstreamUrl, port, idp.issuer, idp.jwksUri)],
      root,
      STARTUP_TIMEOUT_MS,
    );
    const base = `http://127.0.0.1:${gateway.port}`;
    const targets: Target[] = [];
    for (const name of settings.targets) {
      const url = new URL(`${base}/${name}`);
      if (name === 'secure') await assertRefusedWithoutToken(url);
      const session = await openSession(url, name === 'secure' ? { authorization: `Bearer ${token}` } : {});
      await waitForCatalogue(session);
      targets.push({ name, session });
    }
    log(`gateway pid ${gateway.child.pid}: sessions open on ${targets.map((t) => `/${t.name}`).join(', ')}`);

    const results = await measureInterleaved(targets, settings, (t, pool, c) =>
      measureCallRound(t, pool, c, gateway.child, upstream.child),
    );
    const lists: ListResult[] = [];
    for (const t of targets) lists.push(await measureList(t, gateway.child));

    writeReport(values.out, report(results, targets, lists));
    const errors =
      [...results.values()].reduce((n, s) => n + s.errors, 0) + lists.reduce((n, l) => n + l.errors, 0);
    if (errors > 0) console.error(`${errors} calls or lists failed: see the errors columns`);
    return errors > 0 ? 1 : 0;
  } finally {
    await idp.close();
  }
}

runBenchmark(main);
