// The audit log in the real PostgreSQL (127.0.0.1:5432, database `test`, a schema of its own per test):
// records of allowed, denied, timed-out and refused calls field by field; an outage (the database cut off
// through a TCP relay, then a gateway restart while it is down) losing nothing once it returns — spooled,
// replayed in order, the chain intact; the CLI's query and verify (tampering detected); and the retention
// purge with its recorded cut.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { sinkPrivacy } from '../../src/audit/privacy.ts';
import { recordOf } from '../../src/audit/record.ts';
import { PgAuditStore } from '../../src/audit/sinks/postgres.ts';
import { ApiKeyStore } from '../../src/auth/api-keys.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { PgRelay } from '../helpers/pg-relay.ts';
import { rpcError, waitFor } from '../helpers/sdk.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PG = 'postgres://postgres@127.0.0.1:5432/test';
const run = promisify(execFile);
const DAY = 86_400_000;

async function postgresUp(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2_000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const available = await postgresUp();
if (!available) {
  const why = `PostgreSQL is not reachable at ${PG}: the PostgreSQL audit tests cannot run`;
  if (process.env.CI) throw new Error(why);
  console.warn(`\n*** SKIPPED: ${why} ***\n`);
}

async function cli(args: string[]) {
  try {
    const r = await run(process.execPath, [MAIN, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe.skipIf(!available)('audit log in PostgreSQL', () => {
  const schema = `gh_audit_${randomBytes(6).toString('hex')}`;
  const table = `${schema}.audit_records`;
  let admin: pg.Client;
  let relay: PgRelay;
  let dir: string;
  let shop: FixtureHandle;
  let gateway: Gateway;
  let base: string;
  let key: string;
  const logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' });

  const start = async () => {
    gateway = await createGateway(await loadConfigFile(join(dir, 'gw.yaml')), { logger });
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
  };
  const connect = async () => {
    const c = new Client({ name: 'audit-pg', version: '1.0.0' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    return c;
  };
  const select = async (where = '', values: unknown[] = []) =>
    (await admin.query(`SELECT * FROM ${table} ${where} ORDER BY seq`, values)).rows as Record<
      string,
      unknown
    >[];

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    relay = new PgRelay();
    await relay.start();
    dir = mkdtempSync(join(tmpdir(), 'gh-audit-pg-'));
    shop = await startFixture({
      name: 'shop',
      tools: ['echo', 'secret-tool', 'slow'],
      slowTool: { name: 'slow', ms: 2_000 },
    });
    writeFileSync(
      join(dir, 'gw.yaml'),
      `listen: { port: 0 }
api_keys: { store: keys.db }
health: { interval: 0 }
audit:
  flush_interval: 5ms
  spool: { dir: spool }
  sinks:
    - type: postgres
      name: pg
      url: "postgres://postgres@127.0.0.1:${relay.port}/test"
      schema: ${schema}
      table: audit_records
upstreams:
  shop: { type: streamable-http, url: "${shop.url}", request_timeout: 300ms }
routes:
  - path: /mcp
    upstreams: [shop]
    auth: { api_keys: true }
    acl:
      default: { allow: [ops] }
      tools: { "shop:secret-tool": { allow: [admins] } }
    audit_payloads: { arguments: true }
`,
    );
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    key = store.create({ name: 'ops-bot', agent: 'ops-agent', groups: ['ops'], now: Date.now() });
    store.close();
    await start();
  });

  afterAll(async () => {
    await gateway?.stop();
    await shop?.close();
    await relay?.cut();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin?.end();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates its tables and writes allowed, denied, timed-out and refused calls, field by field', async () => {
    const c = await connect();
    await c.callTool({ name: 'echo', arguments: { n: 1 } });
    expect((await rpcError(c.callTool({ name: 'secret-tool', arguments: {} }))).code).toBe(-32602);
    expect((await rpcError(c.callTool({ name: 'slow', arguments: {} }))).code).toBe(-32003);
    await c.close();
    const noKey = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(noKey.status).toBe(401);
    expect(await gateway.audit!.drain(10_000)).toBe(true);

    const version = await admin.query(`SELECT value FROM ${table}_meta WHERE key = 'schema_version'`);
    expect(version.rows).toEqual([{ value: '1' }]);
    const all = await select();
    expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => String(i + 1)));
    const echo = all.find((r) => r.tool_name === 'echo')!;
    expect(echo.ts).toBeInstanceOf(Date);
    expect(echo).toMatchObject({
      user_id: 'ops-bot',
      agent_identity: 'ops-agent',
      mcp_server: 'shop',
      route: '/mcp',
      mcp_method: 'tools/call',
      decision: 'allow',
      outcome: 'ok',
      response_code: 200,
      jsonrpc_code: null,
      is_error: false,
      client_ip: '127.0.0.1',
      arguments: '{"n":1}',
      prev_hash: all[all.indexOf(echo) - 1]!.hash,
    });
    expect(echo.latency_ms as number).toBeGreaterThan(0);
    expect(Number(echo.response_bytes)).toBeGreaterThan(0);
    expect(all.find((r) => r.tool_name === 'secret-tool')).toMatchObject({
      decision: 'deny',
      outcome: 'denied',
      jsonrpc_code: -32602,
      upstream_latency_ms: null,
    });
    expect(all.find((r) => r.tool_name === 'slow')).toMatchObject({
      outcome: 'upstream_error',
      jsonrpc_code: -32003,
      is_error: true,
    });
    expect(all.find((r) => r.response_code === 401)).toMatchObject({
      decision: 'deny',
      user_id: null,
      mcp_method: null,
    });
  });

  it('loses nothing while PostgreSQL is unreachable: calls are served, records spooled, replayed in order', async () => {
    const c = await connect();
    const before = (await select()).length;
    await relay.cut();
    for (let i = 0; i < 20; i++) await c.callTool({ name: 'echo', arguments: { i } });
    await waitFor(() => gateway.audit!.stats().sinks[0]!.state === 'spooling', 'the sink to spool', 10_000);
    const down = gateway.audit!.stats().sinks[0]!;
    expect(down.failures).toBeGreaterThan(0);
    expect(down.spooled).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'spool/pg.spool'))).toBe(true);
    expect((await select()).length).toBe(before);

    await relay.start(relay.port);
    expect(await gateway.audit!.drain(20_000)).toBe(true);
    const up = gateway.audit!.stats().sinks[0]!;
    expect(up).toMatchObject({ state: 'ok', dropped: 0, spooled: 0 });
    const calls = (await select('WHERE arguments LIKE \'{"i":%\'')).map(
      (r) => JSON.parse(String(r.arguments)).i,
    );
    expect(calls).toEqual([...Array(20).keys()]); // each once, in the order of the calls
    expect((await gateway.audit!.store()!.verify({})).ok).toBe(true);
    await c.close();
  });

  it('loses nothing across a restart while it is down: the spool is replayed by the next process', async () => {
    const c = await connect();
    await relay.cut();
    for (let i = 100; i < 110; i++) await c.callTool({ name: 'echo', arguments: { i } });
    await c.close();
    await gateway.stop(); // the sink is down: what is queued goes to the spool on disk
    const spool = readFileSync(join(dir, 'spool/pg.spool'), 'utf8');
    for (let i = 100; i < 110; i++) expect(spool).toContain(`{\\"i\\":${i}}`);
    await relay.start(relay.port);
    await start();
    expect(await gateway.audit!.drain(20_000)).toBe(true);
    const calls = (await select('WHERE arguments LIKE \'{"i":%\''))
      .map((r) => JSON.parse(String(r.arguments)).i as number)
      .filter((i) => i >= 100);
    expect(calls).toEqual([...Array(10).keys()].map((i) => 100 + i));
    const v = await gateway.audit!.store()!.verify({});
    expect(v).toMatchObject({ ok: true, checked: (await select()).length });
  });

  it('gatehouse audit query and verify read PostgreSQL; an altered record is found', async () => {
    const cfg = join(dir, 'gw.yaml');
    const q = await cli([
      'audit',
      'query',
      '-c',
      cfg,
      '--decision',
      'deny',
      '--tool',
      'secret-tool',
      '--json',
    ]);
    expect(q.code, q.stderr + q.stdout).toBe(0);
    expect(JSON.parse(q.stdout)).toMatchObject({
      tool_name: 'secret-tool',
      decision: 'deny',
      user_id: 'ops-bot',
    });
    const ok = await cli(['audit', 'verify', '-c', cfg]);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/^pg: OK — \d+ records \(seq 1\.\./);
    const victim = (await select("WHERE tool_name = 'slow'"))[0]!;
    await admin.query(`UPDATE ${table} SET outcome = 'ok', is_error = false WHERE seq = $1`, [victim.seq]);
    const broken = await cli(['audit', 'verify', '-c', cfg]);
    expect(broken.code, broken.stderr + broken.stdout).toBe(1);
    expect(broken.stdout).toContain(`pg: BROKEN at seq ${victim.seq}`);
  });
});

describe.skipIf(!available)('audit retention in PostgreSQL', () => {
  const schema = `gh_audit_${randomBytes(6).toString('hex')}`;
  let admin: pg.Client;
  let store: PgAuditStore;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    store = new PgAuditStore({
      name: 'pg',
      url: PG,
      schema,
      table: 'audit_log',
      privacy: sinkPrivacy({ omit: [] }),
    });
  });
  afterAll(async () => {
    await store?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin?.end();
  });

  const rowAt = (ts: number, id: string) =>
    recordOf(
      {
        startedAt: ts,
        route: '/mcp',
        sessionId: undefined,
        subject: id,
        mcpMethod: 'tools/call',
        upstream: 'shop',
        target: 'echo',
        targetKind: 'tool',
        outcome: 'ok',
        httpStatus: 200,
        rpcCode: undefined,
        durationMs: 1.5,
        upstreamMs: 1.25,
        requestId: id,
      },
      undefined,
    ).row();

  it('purges what is older than the retention in chunks, records the cut, and verify anchors at it', async () => {
    const now = Date.now();
    await store.write([rowAt(now - 100 * DAY, 'a'), rowAt(now - 95 * DAY, 'b')], false);
    await store.write([rowAt(now - 91 * DAY, 'c'), rowAt(now - DAY, 'd'), rowAt(now, 'e')], false);
    // A retried batch already written is not written twice.
    const again = rowAt(now, 'f');
    await store.write([again], false);
    await store.write([again], true);
    expect((await store.query({}, { limit: 100 })).map((r) => r.user_id)).toEqual([
      'f',
      'e',
      'd',
      'c',
      'b',
      'a',
    ]);

    const purged = await store.purge(now, 90 * DAY);
    expect(purged.deleted).toBe(3);
    expect(purged.cut?.seq).toBe(3);
    const cps = await admin.query(`SELECT cut_seq, cut_hash FROM ${schema}.audit_log_checkpoints`);
    expect(cps.rows).toEqual([{ cut_seq: '3', cut_hash: purged.cut!.hash }]);
    const v = await store.verify({});
    expect(v).toMatchObject({ ok: true, checked: 3, first: 4, anchor: { kind: 'checkpoint', seq: 3 } });
    // A range in the middle is anchored at the record before it.
    const mid = await store.verify({ since: now - 2 * DAY, until: now - DAY / 2 });
    expect(mid).toMatchObject({ ok: true, checked: 1, first: 4 });
    // After everything is purged, new records still chain from the last cut.
    await store.purge(now + 200 * DAY, 90 * DAY);
    await store.write([rowAt(now, 'g')], false);
    expect(await store.verify({})).toMatchObject({
      ok: true,
      checked: 1,
      first: 7,
      anchor: { kind: 'checkpoint', seq: 6 },
    });
    // Removing the cut's record of the checkpoint breaks the proof.
    await admin.query(`DELETE FROM ${schema}.audit_log_checkpoints WHERE cut_seq = 6`);
    expect((await store.verify({})).broken?.problem).toContain('no retention purge recorded a cut');
  });
});
