// The admin API end to end: who may use it (API keys with the admin role, OAuth tokens of an admin group
// from a real IdP), its JSON endpoints (keys, upstreams, routes, sessions), its refusals, and where it
// is served (under /admin on the main listener, or on its own listener); key roles from the CLI and the
// SQLite migration that adds them.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore, hashKey } from '../../src/auth/api-keys.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { textOf, waitFor } from '../helpers/sdk.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ADMIN_AUD = 'https://gw.example.test/admin';
const run = promisify(execFile);

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function call(
  base: string,
  method: string,
  path: string,
  opts: { auth?: string; headers?: Record<string, string>; body?: unknown; rawBody?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth) headers.authorization = `Bearer ${opts.auth}`;
  let body: string | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${method} ${path}: ${r.status} with a body that is not JSON: ${text}`);
  }
  return { status: r.status, headers: r.headers, json };
}

async function connect(url: string, key: string): Promise<Client> {
  const client = new Client({ name: 'admin-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

describe('admin API on the main listener', () => {
  let dir: string;
  let idp: Idp;
  let shop: FixtureHandle;
  let crm: FixtureHandle;
  let gw: RunningGateway;
  let base: string;
  let adminKey: string;
  let agentKey: string;
  let configFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-admin-'));
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'cancel-order'] });
    crm = await startFixture({ name: 'crm', tools: ['list-orders', 'get-customer'] });
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    adminKey = store.create({ name: 'ops', groups: [], roles: ['admin'], now: Date.now() });
    agentKey = store.create({ name: 'bot', groups: ['support'], now: Date.now() });
    store.close();
    const config = `
api_keys: { store: "${join(dir, 'keys.db')}" }
admin:
  oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audience: "${ADMIN_AUD}", groups: [platform, sre] }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
  crm: { type: streamable-http, url: "${crm.url}" }
routes:
  - path: /mcp
    upstreams: [shop, crm]
    auth: { api_keys: true }
health: { interval: 0 }
`;
    configFile = join(dir, 'gw.yaml');
    writeFileSync(configFile, config);
    gw = await startGateway(config);
    base = gw.base;
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await crm?.close();
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('no credential, an unknown key or an invalid token: 401 with WWW-Authenticate, on every admin path', async () => {
    const wrongAudience = await idp.token({
      sub: 'alice',
      groups: ['platform'],
      resource: 'https://elsewhere/x',
    });
    const expired = await idp.token({
      sub: 'alice',
      groups: ['platform'],
      resource: ADMIN_AUD,
      expiresIn: -120,
    });
    for (const path of ['/admin/keys', '/admin/routes', '/admin/no-such-thing', '/admin']) {
      const none = await call(base, 'GET', path);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse-admin"');
      expect(none.json.error).toBe('unauthorized');
      expect(String(none.json.message)).toContain('admin role');
    }
    for (const auth of ['ghk_not-a-key', wrongAudience, expired, 'garbage']) {
      const r = await call(base, 'GET', '/admin/keys', { auth });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse-admin", error="invalid_token"');
    }
  });

  it('a valid key without the admin role, or a token in no admin group: 403', async () => {
    const r = await call(base, 'GET', '/admin/keys', { auth: agentKey });
    expect(r.status).toBe(403);
    expect(r.json.message).toBe('Forbidden: API key "bot" lacks the admin role');
    const token = await idp.token({ sub: 'mallory', groups: ['support'], resource: ADMIN_AUD });
    const t = await call(base, 'GET', '/admin/keys', { auth: token });
    expect(t.status).toBe(403);
    expect(t.json.message).toBe('Forbidden: mallory is in no admin group');
  });

  it('an admin key and a token of an admin group are admitted', async () => {
    expect((await call(base, 'GET', '/admin/keys', { auth: adminKey })).status).toBe(200);
    const token = await idp.token({ sub: 'alice', groups: ['sre'], resource: ADMIN_AUD });
    const r = await call(base, 'GET', '/admin/keys', { auth: token });
    expect(r.status).toBe(200);
    // Listed by creation time, then name: both were created within the same millisecond or not.
    expect((r.json.keys as { name: string }[]).map((k) => k.name).sort()).toEqual(['bot', 'ops']);
  });

  it('POST creates a key shown once that works on the route; GET lists it without secrets; DELETE revokes it at once', async () => {
    const created = await call(base, 'POST', '/admin/keys', {
      auth: adminKey,
      body: { name: 'billing-bot', groups: ['billing'], agent: 'billing-agent', expires_in: '1d' },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const key = String(created.json.key);
    expect(key).toMatch(/^ghk_[A-Za-z0-9_-]{43}$/);
    expect(created.json).toMatchObject({
      name: 'billing-bot',
      agent: 'billing-agent',
      groups: ['billing'],
      roles: [],
    });
    const expiresAt = Date.parse(String(created.json.expires_at));
    expect(expiresAt - Date.now()).toBeGreaterThan(86_400_000 - 60_000);

    const client = await connect(`${base}/mcp`, key);
    try {
      expect(textOf(await client.callTool({ name: 'cancel-order', arguments: { id: 7 } }))).toBe(
        'shop:cancel-order:{"id":7}',
      );
    } finally {
      await client.close();
    }

    const listed = await call(base, 'GET', '/admin/keys', { auth: adminKey });
    const text = JSON.stringify(listed.json);
    expect(text).not.toContain(key);
    expect(text).not.toContain(hashKey(key));
    expect((listed.json.keys as Record<string, unknown>[]).find((k) => k.name === 'billing-bot')).toEqual({
      name: 'billing-bot',
      agent: 'billing-agent',
      groups: ['billing'],
      roles: [],
      status: 'active',
      created_at: created.json.created_at,
      expires_at: created.json.expires_at,
      revoked_at: null,
    });

    const revoked = await call(base, 'DELETE', '/admin/keys/billing-bot', { auth: adminKey });
    expect(revoked.status).toBe(200);
    expect(revoked.json).toMatchObject({ name: 'billing-bot', status: 'revoked' });
    // The gateway's own store drops its cache: the key is refused now, not within cache_ttl.
    await expect(connect(`${base}/mcp`, key)).rejects.toThrow(
      /Unauthorized: this route needs a valid API key/,
    );
    const after = await call(base, 'GET', '/admin/keys', { auth: adminKey });
    expect((after.json.keys as Record<string, unknown>[]).find((k) => k.name === 'billing-bot')?.status).toBe(
      'revoked',
    );
    const again = await call(base, 'DELETE', '/admin/keys/billing-bot', { auth: adminKey });
    expect(again.status).toBe(404);
    expect(again.json.message).toBe('Not Found: no active key named "billing-bot"');
  });

  it('a key created with roles over the API can use the admin API; names are percent-decoded in paths', async () => {
    const created = await call(base, 'POST', '/admin/keys', {
      auth: adminKey,
      body: { name: 'deputy ops/2', roles: ['admin'] },
    });
    expect(created.status).toBe(201);
    const deputy = String(created.json.key);
    expect((await call(base, 'GET', '/admin/sessions', { auth: deputy })).status).toBe(200);
    expect(
      (await call(base, 'DELETE', `/admin/keys/${encodeURIComponent('deputy ops/2')}`, { auth: adminKey }))
        .status,
    ).toBe(200);
    expect((await call(base, 'GET', '/admin/sessions', { auth: deputy })).status).toBe(401);
  });

  it('bad input gets 400 with a precise message; a taken name 409; a non-JSON type 415', async () => {
    const post = (body: unknown) => call(base, 'POST', '/admin/keys', { auth: adminKey, body });
    const cases: [unknown, string][] = [
      [{}, 'Bad Request: "name" is required and must be a string'],
      [{ name: 7 }, 'Bad Request: "name" is required and must be a string'],
      [
        [],
        'Bad Request: the body must be a JSON object such as {"name": "billing-bot", "groups": ["support"]}',
      ],
      [{ name: 'x', groups: 'support' }, 'Bad Request: "groups" must be an array of strings'],
      [{ name: 'x', roles: [1] }, 'Bad Request: "roles" must be an array of strings'],
      [
        { name: 'x', roles: ['a b'] },
        `Bad Request: role "a b" must be 1 to 64 letters, digits, '.', '_', ':' or '-' (e.g. admin)`,
      ],
      [{ name: '' }, 'Bad Request: name must be 1 to 128 characters, without control characters'],
      [
        { name: 'x', expires_in: '3 weeks' },
        'Bad Request: "expires_in" must be a duration such as "30d" or "12h", or a positive number of seconds (got "3 weeks")',
      ],
      [
        { name: 'x', expires_in: -5 },
        'Bad Request: "expires_in" must be a duration such as "30d" or "12h", or a positive number of seconds (got -5)',
      ],
      [{ name: 'x', agent: ['a'] }, 'Bad Request: "agent" must be a string'],
      // An MCP message is not an admin request: it is refused as such, never routed.
      [
        { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} },
        'Bad Request: unknown field "jsonrpc" (expected name, agent, groups, roles, expires_in)',
      ],
    ];
    for (const [body, message] of cases) {
      const r = await post(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json).toEqual({ error: 'bad_request', message });
    }
    const broken = await call(base, 'POST', '/admin/keys', {
      auth: adminKey,
      rawBody: '{"name": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(broken.status).toBe(400);
    expect(String(broken.json.message)).toMatch(/^Bad Request: the body is not valid JSON/);
    const taken = await post({ name: 'bot' });
    expect(taken.status).toBe(409);
    expect(taken.json.message).toBe('Conflict: a key named "bot" exists already');
    const form = await call(base, 'POST', '/admin/keys', {
      auth: adminKey,
      rawBody: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    // Nothing of the refused requests was created.
    const names = (
      (await call(base, 'GET', '/admin/keys', { auth: adminKey })).json.keys as { name: string }[]
    ).map((k) => k.name);
    expect(names).not.toContain('x');
  });

  it('unknown paths get 404 JSON, a known path with another method 405 with Allow', async () => {
    const r = await call(base, 'GET', '/admin/nope/deeper', { auth: adminKey });
    expect(r.status).toBe(404);
    expect(r.json).toEqual({
      error: 'not_found',
      message: 'Not Found: no admin endpoint GET /admin/nope/deeper',
    });
    const m = await call(base, 'DELETE', '/admin/keys', { auth: adminKey });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET, POST');
    expect((await call(base, 'DELETE', '/admin/keys/nobody', { auth: adminKey })).status).toBe(404);
  });

  it('GET /admin/routes and /admin/upstreams: every exposed tool with its upstream and original name; health', async () => {
    await waitFor(async () => {
      const r = await call(base, 'GET', '/admin/routes', { auth: adminKey });
      return (r.json.routes as { present: string[] }[])[0]!.present.length === 2;
    }, 'both upstreams listed');
    const routes = await call(base, 'GET', '/admin/routes', { auth: adminKey });
    const route = (routes.json.routes as Record<string, unknown>[])[0]!;
    expect(route.path).toBe('/mcp');
    expect(route.upstreams).toEqual(['shop', 'crm']);
    expect(route.missing).toEqual([]);
    const tools = route.tools as { name: string; upstream: string; original: string }[];
    expect([...tools].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'cancel-order', upstream: 'shop', original: 'cancel-order' },
      { name: 'crm__list-orders', upstream: 'crm', original: 'list-orders' },
      { name: 'get-customer', upstream: 'crm', original: 'get-customer' },
      { name: 'shop__list-orders', upstream: 'shop', original: 'list-orders' },
    ]);

    const ups = await call(base, 'GET', '/admin/upstreams', { auth: adminKey });
    const byName = Object.fromEntries((ups.json.upstreams as { name: string }[]).map((u) => [u.name, u]));
    expect(Object.keys(byName).sort()).toEqual(['crm', 'shop']);
    expect(byName.shop).toMatchObject({ type: 'streamable-http', status: 'up', in_flight: 0 });
    expect(Number.isNaN(Date.parse(String((byName.shop as Record<string, unknown>).since)))).toBe(false);
  });

  it('GET /admin/sessions counts the live sessions of each route', async () => {
    const count = async () =>
      (await call(base, 'GET', '/admin/sessions', { auth: adminKey })).json as {
        total: number;
        routes: { path: string; sessions: number }[];
      };
    // Earlier tests' clients closed their transports without ending their sessions: count from here.
    const before = (await count()).total;
    const a = await connect(`${base}/mcp`, agentKey);
    const b = await connect(`${base}/mcp`, agentKey);
    try {
      expect(await count()).toEqual({ total: before + 2, routes: [{ path: '/mcp', sessions: before + 2 }] });
      await (a.transport as StreamableHTTPClientTransport).terminateSession();
      expect(await count()).toEqual({ total: before + 1, routes: [{ path: '/mcp', sessions: before + 1 }] });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('`gatehouse keys create --role` stores roles (listed by `keys list`); such a key opens the admin API', async () => {
    const created = await run(process.execPath, [
      MAIN,
      'keys',
      'create',
      '-c',
      configFile,
      '--name',
      'cli-ops',
      '--group',
      'platform',
      '--role',
      'admin',
      '--role',
      'auditor',
    ]);
    const key = created.stdout.trim();
    expect(key).toMatch(/^ghk_/);
    const listed = await run(process.execPath, [MAIN, 'keys', 'list', '-c', configFile]);
    expect(listed.stdout).toMatch(/^cli-ops\tagent=cli-ops\tgroups=platform\troles=admin,auditor\tactive\t/m);
    expect(listed.stdout).toMatch(/^bot\tagent=bot\tgroups=support\troles=-\tactive\t/m);
    // Another process wrote the key: the running gateway reads it from the same file.
    const r = await call(base, 'GET', '/admin/keys', { auth: key });
    expect(r.status).toBe(200);
    expect((r.json.keys as Record<string, unknown>[]).find((k) => k.name === 'cli-ops')?.roles).toEqual([
      'admin',
      'auditor',
    ]);
    const bad = await run(process.execPath, [
      MAIN,
      'keys',
      'create',
      '-c',
      configFile,
      '--name',
      'y',
      '--role',
      '',
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toContain('role "" must be 1 to 64 letters');
  });
});

describe('admin API on its own listener', () => {
  let dir: string;
  let shop: FixtureHandle;
  let gw: RunningGateway;
  let plain: RunningGateway;
  let adminKey: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-admin-l-'));
    shop = await startFixture({ name: 'shop', tools: ['list-orders'] });
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    adminKey = store.create({ name: 'ops', groups: [], roles: ['admin'], now: Date.now() });
    store.close();
    gw = await startGateway(`
api_keys: { store: "${join(dir, 'keys.db')}", header: x-api-key }
admin: { listen: { host: 127.0.0.1, port: 0 } }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /mcp
    upstreams: [shop]
health: { interval: 0 }
`);
    plain = await startGateway(`
api_keys: { store: "${join(dir, 'keys.db')}" }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /mcp
    upstreams: [shop]
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await plain?.close();
    await shop?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /admin/ there, with the key in api_keys.header, and not on the main listener', async () => {
    const adminBase = gw.gateway.adminUrl!;
    expect(adminBase).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(adminBase).not.toBe(gw.base);
    const ok = await call(adminBase, 'GET', '/admin/keys', { headers: { 'x-api-key': adminKey } });
    expect(ok.status).toBe(200);
    expect((ok.json.keys as { name: string }[]).map((k) => k.name)).toEqual(['ops']);
    // The key in another header than the configured one is no credential.
    expect((await call(adminBase, 'GET', '/admin/keys', { auth: adminKey })).status).toBe(401);
    const onMain = await call(gw.base, 'GET', '/admin/keys', { headers: { 'x-api-key': adminKey } });
    expect(onMain.status).toBe(404);
    // The admin listener serves nothing else: no MCP, no health.
    const mcp = await call(adminBase, 'POST', '/mcp', {
      body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} },
      headers: { accept: 'application/json, text/event-stream' },
    });
    expect(mcp.status).toBe(404);
    expect(mcp.json.error).toBe('not_found');
  });

  it('without an admin block there is no admin API', async () => {
    const r = await call(plain.base, 'GET', '/admin/keys', { auth: adminKey });
    expect(r.status).toBe(404);
    expect(r.json.error).toBe('not_found');
    expect(plain.gateway.adminUrl).toBeUndefined();
  });
});

describe('SQLite key store: roles', () => {
  it('a file made before keys had roles gets the column; its keys keep working, with no roles', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-keys-old-'));
    try {
      const file = join(dir, 'old.db');
      const old = new DatabaseSync(file);
      old.exec(`CREATE TABLE api_keys (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, agent TEXT NOT NULL, groups TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER)`);
      const legacyKey = `ghk_${'a'.repeat(43)}`;
      old
        .prepare('INSERT INTO api_keys (name, hash, agent, groups, created_at) VALUES (?, ?, ?, ?, ?)')
        .run('legacy', hashKey(legacyKey), 'legacy', '["ops"]', 1_000);
      old.close();

      const store = new ApiKeyStore(file);
      try {
        expect(store.verify(legacyKey, Date.now())).toMatchObject({
          name: 'legacy',
          groups: ['ops'],
          roles: [],
        });
        store.create({ name: 'new', groups: [], roles: ['admin'], now: 2_000 });
        expect(store.list().map((k) => [k.name, k.roles])).toEqual([
          ['legacy', []],
          ['new', ['admin']],
        ]);
      } finally {
        store.close();
      }
      // Opening it again does not migrate twice.
      const again = new ApiKeyStore(file);
      expect(again.list()).toHaveLength(2);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
