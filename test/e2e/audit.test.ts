// The audit log in SQLite (the default sink), end to end: a real gateway with API keys and an ACL in front
// of a fixture MCP server and a REST API, called by the official SDK client and by raw HTTP; each kind of
// exchange (allowed, denied by the ACL, upstream failure, timeout, 401/400/413) checked field by field in
// the database; payload redaction, pseudonymisation and omitted fields; the JSON Lines sink; the CLI
// (query, export, verify — tampering detected); GET /admin/audit with filters and pagination; and
// `audit: required` refusing calls (503) while records cannot be kept, `best_effort` serving them and
// counting the loss, then both recovering.

import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { pseudonym } from '../../src/audit/privacy.ts';
import type { StoredRecord } from '../../src/audit/record.ts';
import { fromDbRow } from '../../src/audit/store.ts';
import { ApiKeyStore } from '../../src/auth/api-keys.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type RestEcho, startRestEcho } from '../fixtures/rest-echo.ts';
import { rpcError, waitFor } from '../helpers/sdk.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);
const AUDIT_KEY = 'test-pseudonym-key';
const UA = 'audit-test/1.0';

/** Runs the CLI; resolves with its exit code and output (never rejects on a non-zero exit). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function rows(dbPath: string, where = '', ...params: (string | number)[]): StoredRecord[] {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return db
      .prepare(`SELECT * FROM audit_log ${where} ORDER BY seq`)
      .all(...params)
      .map(fromDbRow);
  } finally {
    db.close();
  }
}

describe('audit log in SQLite, through the gateway', () => {
  let dir: string;
  let shop: FixtureHandle;
  let api: RestEcho;
  let gateway: Gateway;
  let base: string;
  const keys: Record<string, string> = {};
  let client: Client;
  let transport: StreamableHTTPClientTransport;
  const db = () => join(dir, 'audit.db');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-audit-'));
    shop = await startFixture({
      name: 'shop',
      tools: ['echo', 'secret-tool', 'slow'],
      slowTool: { name: 'slow', ms: 2_000 },
    });
    api = await startRestEcho();
    writeFileSync(
      join(dir, 'gw.yaml'),
      `listen: { port: 0 }
api_keys: { store: keys.db }
health: { interval: 0 }
limits: { max_body_bytes: 4KiB }
admin: {}
audit:
  flush_interval: 5ms
  sinks:
    - { type: sqlite, path: audit.db }
    - type: sqlite
      name: private
      path: private.db
      pseudonymize: { key: { env: AUDIT_KEY }, fields: [user_id, agent_identity] }
      omit: [client_ip, user_agent, arguments]
    - { type: jsonl, path: logs/audit.jsonl }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}", request_timeout: 300ms }
  api:
    type: rest
    base_url: "${api.origin}/api"
    tools: [{ name: fail, method: GET, path: /status/500 }]
routes:
  - path: /mcp
    upstreams: [shop, api]
    auth: { api_keys: true }
    acl:
      default: { allow: [ops] }
      tools: { "shop:secret-tool": { allow: [admins] } }
    audit_payloads: { results: true, redact_paths: [card.number, "items[*].ssn"] }
`,
    );
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    const now = Date.now();
    keys.ops = store.create({ name: 'ops-bot', agent: 'ops-agent', groups: ['ops'], now });
    keys.admin = store.create({ name: 'root', groups: ['admins'], roles: ['admin'], now });
    store.close();
    gateway = await createGateway(await loadConfigFile(join(dir, 'gw.yaml'), { ...process.env, AUDIT_KEY }), {
      logger: pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' }),
    });
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
    client = new Client({ name: 'audit-test', version: '1.0.0' });
    transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${keys.ops}`, 'user-agent': UA } },
    });
    await client.connect(transport);
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await gateway?.stop();
    await shop?.close();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const settle = async () => expect(await gateway.audit!.drain(10_000)).toBe(true);
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'user-agent': UA,
        ...headers,
      },
      body,
    });

  it('an allowed call is one record with every field, its arguments redacted', async () => {
    const t0 = Date.now();
    const args = {
      card: { number: '4111111111111111', holder: 'Ann' },
      items: [{ ssn: '123', n: 2 }],
      password: 'pw',
    };
    await client.callTool({ name: 'echo', arguments: args });
    await settle();
    const [r] = rows(db(), "WHERE tool_name = 'echo'");
    expect(r).toBeDefined();
    expect(r).toMatchObject({
      user_id: 'ops-bot',
      agent_identity: 'ops-agent',
      tenant: null,
      mcp_server: 'shop',
      route: '/mcp',
      mcp_method: 'tools/call',
      tool_name: 'echo',
      resource_uri: null,
      prompt_name: null,
      decision: 'allow',
      reason: null,
      outcome: 'ok',
      response_code: 200,
      jsonrpc_code: null,
      upstream_response_code: null,
      is_error: false,
      session_id: transport.sessionId,
      trace_id: null,
      client_ip: '127.0.0.1',
      user_agent: UA,
      error_message: null,
    });
    expect(r!.ts).toBeGreaterThanOrEqual(t0 - 5);
    expect(r!.ts).toBeLessThanOrEqual(Date.now());
    expect(r!.latency_ms).toBeGreaterThan(0);
    expect(r!.upstream_latency_ms).toBeGreaterThan(0);
    expect(r!.upstream_latency_ms!).toBeLessThanOrEqual(r!.latency_ms);
    expect(r!.request_bytes).toBeGreaterThan(JSON.stringify(args).length);
    expect(r!.response_bytes).toBeGreaterThan(20);
    expect(r!.request_id).toBeTruthy();
    expect(Number(r!.rpc_id)).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(r!.arguments!)).toEqual({
      card: { number: '[redacted]', holder: 'Ann' },
      items: [{ ssn: '[redacted]', n: 2 }],
      password: '[redacted]',
    });
    expect(JSON.parse(r!.result!).content[0].text).toMatch(/^shop:echo:/);
    // The session's initialize has its own record, before it.
    const init = rows(db(), "WHERE mcp_method = 'initialize'");
    expect(init[0]).toMatchObject({ session_id: transport.sessionId, decision: 'allow', user_id: 'ops-bot' });
    expect(init[0]!.seq).toBeLessThan(r!.seq);
  });

  it('a sink with pseudonymisation stores HMACs and omits fields; a query by the raw user id finds them', async () => {
    const priv = rows(join(dir, 'private.db'), "WHERE tool_name = 'echo'");
    expect(priv).toHaveLength(1);
    expect(priv[0]).toMatchObject({
      user_id: pseudonym(AUDIT_KEY, 'ops-bot'),
      agent_identity: pseudonym(AUDIT_KEY, 'ops-agent'),
      client_ip: null,
      user_agent: null,
      arguments: null,
      tool_name: 'echo',
    });
    expect(JSON.stringify(priv[0])).not.toContain('ops-bot');
    const found = await gateway
      .audit!.store('private')!
      .query({ user: 'ops-bot', tool: 'echo' }, { limit: 10 });
    expect(found.map((x) => x.id)).toEqual([priv[0]!.id]);
    // The same record (same id) in the main sink, with its raw identity.
    expect(rows(db(), 'WHERE id = ?', priv[0]!.id)[0]!.user_id).toBe('ops-bot');
  });

  it('a call the ACL refuses is a deny with the ACL reason, and never reached the upstream', async () => {
    const before = (await shop.state()).calls.length;
    const e = await rpcError(client.callTool({ name: 'secret-tool', arguments: {} }));
    expect(e.code).toBe(-32602);
    expect((await shop.state()).calls.length).toBe(before);
    await settle();
    const [r] = rows(db(), "WHERE tool_name = 'secret-tool'");
    expect(r).toMatchObject({
      decision: 'deny',
      outcome: 'denied',
      user_id: 'ops-bot',
      mcp_server: 'shop',
      mcp_method: 'tools/call',
      response_code: 200,
      jsonrpc_code: -32602,
      is_error: true,
      upstream_latency_ms: null,
      upstream_response_code: null,
      error_message: 'Unknown tool: secret-tool',
    });
    expect(r!.reason).toContain('shop:secret-tool');
  });

  it("an upstream's failure: the REST API's own status is upstream_response_code", async () => {
    const res = await client.callTool({ name: 'fail', arguments: {} });
    expect(res.isError).toBe(true);
    await settle();
    const [r] = rows(db(), "WHERE tool_name = 'fail'");
    expect(r).toMatchObject({
      mcp_server: 'api',
      decision: 'allow',
      outcome: 'ok',
      response_code: 200,
      upstream_response_code: 500,
      is_error: true,
    });
  });

  it('a timeout is an upstream_error with the gateway code and the time waited', async () => {
    const e = await rpcError(client.callTool({ name: 'slow', arguments: {} }));
    expect(e.code).toBe(-32003);
    await settle();
    const [r] = rows(db(), "WHERE tool_name = 'slow'");
    expect(r).toMatchObject({
      mcp_server: 'shop',
      decision: 'allow',
      outcome: 'upstream_error',
      jsonrpc_code: -32003,
      is_error: true,
    });
    expect(r!.upstream_latency_ms).toBeGreaterThanOrEqual(250);
    expect(r!.error_message).toContain('shop');
  });

  it('bad requests are denials with their HTTP status: 401 without a key, 400 unparsable, 413 too large', async () => {
    const t0 = Date.now();
    const noKey = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    expect(noKey.status).toBe(401);
    const bad = await post('{"jsonrpc":', { authorization: `Bearer ${keys.ops}` });
    expect(bad.status).toBe(400);
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { x: 'y'.repeat(8000) },
    });
    const big = await post(huge, { authorization: `Bearer ${keys.ops}` });
    expect(big.status).toBe(413);
    await settle();
    const edge = rows(db(), 'WHERE response_code >= 400 AND ts >= ?', t0 - 5);
    const by = (status: number) => edge.find((r) => r.response_code === status);
    expect(by(401)).toMatchObject({
      decision: 'deny',
      user_id: null,
      route: '/mcp',
      mcp_method: null,
      jsonrpc_code: -32000,
      client_ip: '127.0.0.1',
      user_agent: UA,
      is_error: true,
    });
    expect(by(401)!.reason).toMatch(/^Unauthorized/);
    expect(by(400)).toMatchObject({ decision: 'deny', user_id: 'ops-bot', jsonrpc_code: -32700 });
    expect(by(400)!.request_bytes).toBe('{"jsonrpc":'.length);
    expect(by(413)).toMatchObject({ decision: 'deny', jsonrpc_code: -32000, request_bytes: huge.length });
    expect(by(413)!.reason).toContain('Payload Too Large');
    expect(edge.filter((r) => [401, 400, 413].includes(r.response_code))).toHaveLength(3);
  });

  it('the JSON Lines sink has the same records, chained, in order', async () => {
    await settle();
    const lines = readFileSync(join(dir, 'logs/audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const inDb = rows(db());
    expect(lines.map((l) => l.id)).toEqual(inDb.map((r) => r.id));
    expect(lines.map((l) => l.seq)).toEqual(inDb.map((_, i) => i + 1));
    expect(lines[1].prev_hash).toBe(lines[0].hash);
    expect(lines[0].time).toBe(new Date(lines[0].ts).toISOString());
  });

  it('gatehouse audit query: filters, a table or JSON lines', async () => {
    const cfg = join(dir, 'gw.yaml');
    const env = { AUDIT_KEY };
    const json = await cli(
      ['audit', 'query', '-c', cfg, '--since', '1h', '--user', 'ops-bot', '--tool', 'echo', '--json'],
      env,
    );
    expect(json.code, json.stderr + json.stdout).toBe(0);
    const found = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      tool_name: 'echo',
      user_id: 'ops-bot',
      arguments: { password: '[redacted]' },
    });
    const denied = await cli(['audit', 'query', '-c', cfg, '--decision', 'deny', '--route', '/mcp'], env);
    expect(denied.code, denied.stderr + denied.stdout).toBe(0);
    const [head, ...lines] = denied.stdout.trim().split('\n');
    expect(head).toMatch(/^TIME\s+USER/);
    expect(lines.length).toBe(rows(db(), "WHERE decision = 'deny'").length);
    expect(lines.every((l) => /\bdeny\b/.test(l))).toBe(true);
    // The private sink answers queries by the raw user id as well.
    const priv = await cli(
      ['audit', 'query', '-c', cfg, '--sink', 'private', '--user', 'ops-bot', '--limit', '1', '--json'],
      env,
    );
    expect(JSON.parse(priv.stdout).user_id).toBe(pseudonym(AUDIT_KEY, 'ops-bot'));
    const wrong = await cli(['audit', 'query', '-c', cfg, '--decision', 'maybe'], env);
    expect(wrong.code, wrong.stderr + wrong.stdout).toBe(1);
    expect(wrong.stderr).toContain('decision');
  });

  it('gatehouse audit export: every record of the range, oldest first, with its chain', async () => {
    const out = await cli(['audit', 'export', '-c', join(dir, 'gw.yaml'), '--since', '1h'], { AUDIT_KEY });
    expect(out.code, out.stderr + out.stdout).toBe(0);
    const exported = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(exported.map((r) => r.seq)).toEqual(rows(db()).map((r) => r.seq));
    expect(exported[0]).toHaveProperty('hash');
    expect(out.stderr).toContain(`exported ${exported.length} records`);
  });

  it('GET /admin/audit: the same filters, cursor pagination, behind the admin credential', async () => {
    const get = (qs: string, key = keys.admin) =>
      fetch(`${base}/admin/audit?${qs}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    expect((await get('decision=deny', '')).status).toBe(401);
    expect((await get('decision=deny', keys.ops)).status).toBe(403);
    const denies = rows(db(), "WHERE decision = 'deny'").reverse();
    expect(denies.length).toBeGreaterThanOrEqual(3);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`decision=deny&since=1h&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        sink: string;
        records: StoredRecord[];
        next_cursor: string | null;
      };
      expect(body.sink).toBe('sqlite');
      expect(body.records.length).toBeLessThanOrEqual(2);
      for (const r of body.records) expect(r.decision).toBe('deny');
      seen.push(...body.records.map((r) => r.seq));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(denies.map((r) => r.seq));
    const one = (await (await get('user=ops-bot&tool=echo')).json()) as { records: StoredRecord[] };
    expect(one.records.map((r) => r.tool_name)).toEqual(['echo']);
    const bad = await get('since=yesterday');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('since');
    expect((await get('sink=nope')).status).toBe(404);
  });

  it('gatehouse audit verify proves the chain, and finds the first altered record', async () => {
    await settle();
    const cfg = join(dir, 'gw.yaml');
    const ok = await cli(['audit', 'verify', '-c', cfg], { AUDIT_KEY });
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(
      /^sqlite: OK — \d+ records \(seq 1\.\.\d+\) complete and unaltered, from the first record/m,
    );
    expect(ok.stdout).toMatch(/^private: OK/m);
    expect(ok.stdout).toMatch(/^jsonl: OK/m);
    // Someone turns a denial into an allow.
    const target = rows(db(), "WHERE tool_name = 'secret-tool'")[0]!;
    const w = new DatabaseSync(db());
    w.prepare("UPDATE audit_log SET decision = 'allow' WHERE seq = ?").run(target.seq);
    w.close();
    const broken = await cli(['audit', 'verify', '-c', cfg, '--sink', 'sqlite'], { AUDIT_KEY });
    expect(broken.code, broken.stderr + broken.stdout).toBe(1);
    expect(broken.stdout).toContain(`sqlite: BROKEN at seq ${target.seq}`);
    expect(broken.stdout).toContain('altered');
    // The range before it is still proven.
    const before = await cli(
      ['audit', 'verify', '-c', cfg, '--sink', 'sqlite', '--until', String(target.ts - 1)],
      {
        AUDIT_KEY,
      },
    );
    expect(before.code, before.stderr + before.stdout).toBe(0);
  });
});

describe('audit: required refuses calls while records cannot be kept; best_effort serves and counts', () => {
  let dir: string;
  let shop: FixtureHandle;
  let gateway: Gateway;
  let base: string;
  const clients: Client[] = [];
  /** Every exchange event the gateway emitted (an observer beside the audit log). */
  let emitted = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-audit-req-'));
    shop = await startFixture({ name: 'shop', tools: ['echo'] });
    // The database's directory is a plain file: the sink cannot open until the test removes it.
    writeFileSync(join(dir, 'blocked'), 'not a directory');
    writeFileSync(
      join(dir, 'gw.yaml'),
      `listen: { port: 0 }
health: { interval: 0 }
audit:
  queue_size: 2
  flush_interval: 5ms
  spool: { max_size: 0 }
  sinks: [{ type: sqlite, path: blocked/audit.db }]
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - { path: /strict, upstreams: [shop] }
  - { path: /lenient, upstreams: [shop], audit: best_effort }
`,
    );
    gateway = await createGateway(await loadConfigFile(join(dir, 'gw.yaml')), {
      logger: pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' }),
      sink: { emit: () => void emitted++ },
    });
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
  });
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await gateway?.stop();
    await shop?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(route: string): Promise<Client> {
    const c = new Client({ name: 'audit-required', version: '1.0.0' });
    await c.connect(new StreamableHTTPClientTransport(new URL(`${base}${route}`)));
    clients.push(c);
    return c;
  }

  it('refuses with 503 on the required route, serves the best_effort one, counts and marks the loss, then recovers', async () => {
    const strict = await connect('/strict');
    const lenient = await connect('/lenient');
    for (let i = 0; i < 6; i++) await lenient.callTool({ name: 'echo', arguments: { i } });
    await waitFor(() => gateway.audit!.stats().sinks[0]!.failures > 0, 'the first write to fail');
    const stats = gateway.audit!.stats();
    expect(stats.accepting).toBe(false);
    expect(stats.sinks[0]!.dropped).toBeGreaterThan(0);
    expect(stats.lost).toBe(stats.sinks[0]!.dropped);
    expect(stats.sinks[0]!.lastError).toContain('blocked');
    const before = (await shop.state()).calls.length;
    const refused = await strict.callTool({ name: 'echo', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: number },
    );
    expect(refused?.code).toBe(503);
    expect(refused?.message).toContain('requires audit');
    expect((await shop.state()).calls.length).toBe(before);
    // A raw request sees the status and the JSON-RPC error.
    const raw = await fetch(`${base}/strict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }),
    });
    expect(raw.status).toBe(503);
    expect(((await raw.json()) as { error: { code: number } }).error.code).toBe(-32006);

    // The database becomes writable: records flow again, the required route serves again.
    rmSync(join(dir, 'blocked'));
    await waitFor(() => gateway.audit!.stats().accepting, 'the audit sink to accept records again', 15_000);
    await strict.callTool({ name: 'echo', arguments: { after: true } });
    expect(await gateway.audit!.drain(10_000)).toBe(true);
    const stored = rows(join(dir, 'blocked/audit.db'));
    const gap = stored.find((r) => r.mcp_method === 'gatehouse/audit_gap');
    expect(gap?.reason).toMatch(
      new RegExp(`^${gateway.audit!.stats().sinks[0]!.dropped} audit records? lost`),
    );
    // Nothing unaccounted for: every exchange is either stored or counted as lost.
    const kept = stored.filter((r) => r.mcp_method !== 'gatehouse/audit_gap');
    expect(kept.length + gateway.audit!.stats().sinks[0]!.dropped).toBe(emitted);
    const calls = stored.filter((r) => r.mcp_method === 'tools/call');
    expect(calls[calls.length - 1]).toMatchObject({ route: '/strict', decision: 'allow' });
    const verified = await gateway.audit!.store()!.verify({});
    expect(verified).toMatchObject({ ok: true, checked: stored.length });
  });
});

describe('retention: the purge cuts the chain at a recorded point, and verify still proves the rest', () => {
  let dir: string;
  let shop: FixtureHandle;
  let gateway: Gateway;
  let base: string;
  const DAY = 86_400_000;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-audit-purge-'));
    shop = await startFixture({ name: 'shop', tools: ['echo'] });
    writeFileSync(
      join(dir, 'gw.yaml'),
      `listen: { port: 0 }
health: { interval: 0 }
audit:
  flush_interval: 5ms
  sinks:
    - { type: sqlite, path: audit.db, retention: 30d }
    - { type: jsonl, path: audit.jsonl, max_size: 2KiB, keep: 5, retention: 7d }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - { path: /mcp, upstreams: [shop] }
`,
    );
    gateway = await createGateway(await loadConfigFile(join(dir, 'gw.yaml')), {
      logger: pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' }),
    });
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
  });
  afterAll(async () => {
    await gateway?.stop();
    await shop?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('removes what is older than the retention, records the cut, and verify anchors there', async () => {
    const now = Date.now();
    // Records of exchanges 40 and 35 days old (the gateway's own sink API), then fresh calls.
    for (const age of [40, 40, 35]) {
      gateway.audit!.emit({
        startedAt: now - age * DAY,
        route: '/mcp',
        sessionId: undefined,
        subject: 'old-user',
        mcpMethod: 'tools/call',
        upstream: 'shop',
        target: 'echo',
        targetKind: 'tool',
        outcome: 'ok',
        httpStatus: 200,
        rpcCode: undefined,
        durationMs: 1,
        upstreamMs: 1,
        requestId: `old-${age}`,
      });
    }
    expect(await gateway.audit!.drain(5_000)).toBe(true);
    const c = new Client({ name: 'purge', version: '1.0.0' });
    await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
    for (let i = 0; i < 3; i++) await c.callTool({ name: 'echo', arguments: { i } });
    await c.close();
    expect(await gateway.audit!.drain(5_000)).toBe(true);
    const all = rows(join(dir, 'audit.db'));
    expect(all.map((r) => r.user_id).slice(0, 3)).toEqual(['old-user', 'old-user', 'old-user']);

    await gateway.audit!.purge();
    const kept = rows(join(dir, 'audit.db'));
    expect(kept.map((r) => r.seq)).toEqual(all.slice(3).map((r) => r.seq));
    const cdb = new DatabaseSync(join(dir, 'audit.db'), { readOnly: true });
    const cps = cdb.prepare('SELECT cut_seq, cut_hash FROM audit_checkpoints').all();
    cdb.close();
    expect(cps).toEqual([{ cut_seq: 3, cut_hash: all[2]!.hash }]);

    const ok = await cli(['audit', 'verify', '-c', join(dir, 'gw.yaml'), '--sink', 'sqlite']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toContain(`sqlite: OK — ${kept.length} records (seq 4..${kept[kept.length - 1]!.seq})`);
    expect(ok.stdout).toContain('from the retention purge cut at seq 3');

    // New records after a purge continue the chain.
    gateway.audit!.emit({
      startedAt: Date.now(),
      route: '/mcp',
      sessionId: undefined,
      subject: 'new-user',
      mcpMethod: 'ping',
      upstream: undefined,
      target: undefined,
      outcome: 'ok',
      httpStatus: 200,
      rpcCode: undefined,
      durationMs: 0.1,
      upstreamMs: undefined,
      requestId: 'after-purge',
    });
    expect(await gateway.audit!.drain(5_000)).toBe(true);
    expect((await gateway.audit!.store()!.verify({})).ok).toBe(true);

    // Deleting a record in the middle (what a purge does not do) is caught.
    const victim = kept[1]!;
    const w = new DatabaseSync(join(dir, 'audit.db'));
    w.prepare('DELETE FROM audit_log WHERE seq = ?').run(victim.seq);
    w.close();
    const broken = await cli(['audit', 'verify', '-c', join(dir, 'gw.yaml'), '--sink', 'sqlite']);
    expect(broken.code, broken.stderr + broken.stdout).toBe(1);
    expect(broken.stdout).toContain(`BROKEN at seq ${victim.seq + 1}`);
    expect(broken.stdout).toContain(`record ${victim.seq} missing`);
    // Deleting the oldest records without a recorded cut is caught too.
    const w2 = new DatabaseSync(join(dir, 'audit.db'));
    w2.prepare('DELETE FROM audit_log WHERE seq <= ?').run(victim.seq);
    w2.close();
    const head = await cli(['audit', 'verify', '-c', join(dir, 'gw.yaml'), '--sink', 'sqlite']);
    expect(head.code, head.stderr + head.stdout).toBe(1);
    expect(head.stdout).toContain('no retention purge recorded a cut there');
  });

  it('the JSON Lines sink rotates by size, keeps its chain across files, and purges old files', async () => {
    const files = () =>
      readdirSync(dir)
        .filter((f) => f.startsWith('audit.jsonl'))
        .sort();
    expect(files().length).toBeGreaterThan(1); // 2KiB per file: the records above rotated it
    const ok = await cli(['audit', 'verify', '-c', join(dir, 'gw.yaml'), '--sink', 'jsonl']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toContain('from the first record');
    // The oldest rotated file is older than the retention: the purge removes it, verify starts after it.
    const oldest = files()
      .filter((f) => f !== 'audit.jsonl')
      .sort()
      .reverse()[0]!;
    const past = new Date(Date.now() - 8 * DAY);
    utimesSync(join(dir, oldest), past, past);
    await gateway.audit!.purge();
    expect(files()).not.toContain(oldest);
    const after = await cli(['audit', 'verify', '-c', join(dir, 'gw.yaml'), '--sink', 'jsonl']);
    expect(after.code, after.stderr + after.stdout).toBe(0);
    expect(after.stdout).toContain('earlier files rotated away');
  });
});

describe('a burst larger than the queue overflows to the spool and is written in order, none lost', () => {
  it('2,000 records into a queue of 50', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-audit-burst-'));
    const { parseConfig } = await import('../../src/config/load.ts');
    const { AuditLog } = await import('../../src/audit/audit-log.ts');
    const config = parseConfig(
      `audit: { queue_size: 50, batch_size: 100, flush_interval: 5ms, sinks: [{ type: sqlite, path: audit.db }] }
upstreams: { m: { type: streamable-http, url: "http://127.0.0.1:9/mcp" } }
routes: [{ path: /mcp, upstreams: [m] }]
`,
      't.yaml',
      {},
    );
    const audit = await AuditLog.create({
      config: config.audit,
      routes: config.routes,
      baseDir: dir,
      resolveSecret: async (ref) => String(ref),
      logger: pino({ level: 'silent' }),
    });
    audit.start();
    try {
      // All in one tick: the writer cannot run meanwhile, so the queue overflows.
      for (let i = 0; i < 2_000; i++) {
        audit.emit({
          startedAt: Date.now(),
          route: '/mcp',
          sessionId: undefined,
          subject: 'u',
          mcpMethod: 'tools/call',
          upstream: 'm',
          target: 'echo',
          targetKind: 'tool',
          outcome: 'ok',
          httpStatus: 200,
          rpcCode: undefined,
          durationMs: 1,
          upstreamMs: 1,
          requestId: `burst-${i}`,
        });
      }
      expect(audit.refusal('/mcp')).toBeUndefined(); // the spool takes what the queue cannot
      expect(await audit.drain(20_000)).toBe(true);
      const s = audit.stats().sinks[0]!;
      expect(s).toMatchObject({ written: 2_000, dropped: 0, spooled: 0 });
      expect(s.spooledTotal).toBeGreaterThan(1_000);
      const stored = rows(join(dir, 'audit.db'));
      expect(stored.map((r) => r.request_id)).toEqual([...Array(2_000).keys()].map((i) => `burst-${i}`));
      expect(await audit.store()!.verify({})).toMatchObject({ ok: true, checked: 2_000 });
    } finally {
      await audit.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
