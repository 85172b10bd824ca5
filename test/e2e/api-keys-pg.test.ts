// API keys in the real PostgreSQL (127.0.0.1:5432, database `test`): made, listed and revoked with
// `gatehouse keys`, used through the gateway by the official SDK client, expiry, revocation seen by
// another instance within cache_ttl, and outages — the database unreachable at start, or cut off
// while a real `gatehouse serve` process runs (through a TCP relay we can stop) — answered with 503,
// never an allow, the process staying up and recovering when the database is back.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey, VerifyCache } from '../../src/auth/api-keys.ts';
import { PG_KEYS_TABLE, PgApiKeyStore } from '../../src/auth/api-keys-pg.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { PgRelay } from '../helpers/pg-relay.ts';
import { textOf, waitFor } from '../helpers/sdk.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PG = 'postgres://postgres@127.0.0.1:5432/test';
const run = promisify(execFile);

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
  const why = `PostgreSQL is not reachable at ${PG}: the PostgreSQL key store tests cannot run`;
  if (process.env.CI) throw new Error(why);
  console.warn(`\n*** SKIPPED: ${why} ***\n`);
}

/** A store URL whose tables live in `schema` (libpq's options parameter sets the search_path). */
const storeUrl = (schema: string, hostPort = '127.0.0.1:5432') =>
  `postgres://postgres@${hostPort}/test?options=${encodeURIComponent(`-c search_path=${schema}`)}`;

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function initBody() {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'pg-test', version: '1' },
    },
  });
}

/** POSTs initialize with a key; the status and body. */
async function initialize(url: string, key: string | undefined): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(url, { method: 'POST', headers, body: initBody() });
  return { status: r.status, body: await r.text() };
}

async function connect(url: string, key: string): Promise<Client> {
  const client = new Client({ name: 'pg-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

describe.skipIf(!available)('API keys in PostgreSQL', () => {
  const schema = `gh_keys_${randomBytes(6).toString('hex')}`;
  const url = storeUrl(schema);
  let admin: pg.Client;
  let dir: string;
  let configFile: string;
  let shop: FixtureHandle;
  const gateways: RunningGateway[] = [];
  const stores: PgApiKeyStore[] = [];
  const relays: PgRelay[] = [];
  const children: ChildProcess[] = [];

  const cli = (...args: string[]) => run(process.execPath, [MAIN, 'keys', ...args, '-c', configFile]);
  const gatewayConfig = (storeAt: string, extra = '') => `
api_keys: { store: "${storeAt}", cache_ttl: 300ms }
${extra}
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /mcp
    upstreams: [shop]
    auth: { api_keys: true }
health: { interval: 0 }
`;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    dir = mkdtempSync(join(tmpdir(), 'gh-pg-'));
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'cancel-order'] });
    configFile = join(dir, 'gw.yaml');
    writeFileSync(configFile, gatewayConfig(url));
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const g of gateways) await g.close();
    for (const s of stores) await s.close();
    for (const r of relays) await r.cut();
    await shop?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin?.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('`gatehouse keys create|list|revoke` work on PostgreSQL; the table it creates holds hashes only', async () => {
    const { stdout } = await cli(
      'create',
      '--name',
      'ops-bot',
      '--group',
      'ops',
      '--group',
      'sre',
      '--role',
      'admin',
    );
    const key = stdout.trim();
    expect(key).toMatch(/^ghk_[A-Za-z0-9_-]{43}$/);
    const dup = await cli('create', '--name', 'ops-bot').then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(dup?.code).toBe(1);
    expect(dup?.stderr).toContain('a key named "ops-bot" exists already');

    const rows = (await admin.query(`SELECT * FROM ${schema}.${PG_KEYS_TABLE}`)).rows as Record<
      string,
      unknown
    >[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      name: 'ops-bot',
      agent: 'ops-bot',
      groups: ['ops', 'sre'],
      roles: ['admin'],
    });
    expect(rows[0]!.hash).toBe(hashKey(key));
    expect(JSON.stringify(rows)).not.toContain(key);

    expect((await cli('list')).stdout).toMatch(
      /^ops-bot\tagent=ops-bot\tgroups=ops,sre\troles=admin\tactive\t/m,
    );
    expect((await cli('revoke', '--name', 'ops-bot')).stdout).toContain(
      'key "ops-bot" revoked (running gateways stop accepting it within 300 ms, api_keys.cache_ttl)',
    );
    expect((await cli('list')).stdout).toMatch(/^ops-bot\t.*\trevoked\t/m);
    const again = await cli('revoke', '--name', 'ops-bot').then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(again?.code).toBe(1);
  });

  it('a key made by the CLI works through the gateway (SDK client); revoked, it is refused within cache_ttl, also by another instance', async () => {
    const key = (await cli('create', '--name', 'shop-bot', '--group', 'shop')).stdout.trim();
    const adminKey = (await cli('create', '--name', 'pg-admin', '--role', 'admin')).stdout.trim();
    const a = await startGateway(gatewayConfig(url));
    const b = await startGateway(gatewayConfig(url, 'admin: {}'));
    gateways.push(a, b);
    const client = await connect(`${a.base}/mcp`, key);
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([
        'cancel-order',
        'list-orders',
      ]);
      expect(textOf(await client.callTool({ name: 'list-orders', arguments: {} }))).toBe(
        'shop:list-orders:{}',
      );
    } finally {
      await client.close();
    }
    // Revoked through the other instance's admin API: this one stops accepting it within cache_ttl.
    const del = await fetch(`${b.base}/admin/keys/shop-bot`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adminKey}` },
    });
    expect(del.status).toBe(200);
    await waitFor(
      async () => (await initialize(`${a.base}/mcp`, key)).status === 401,
      'the revocation',
      3_000,
    );
    expect((await initialize(`${b.base}/mcp`, key)).status).toBe(401);
  });

  it('expiry: a key works until it expires, then gets the same 401 as an unknown key', async () => {
    const store = new PgApiKeyStore(url, { cacheTtlMs: 10_000 });
    stores.push(store);
    const now = Date.now();
    const shortLived = await store.create({ name: 'short', groups: [], now, expiresAt: now + 1_500 });
    const expired = await store.create({ name: 'gone', groups: [], now: now - 10_000, expiresAt: now - 1 });
    const gw = await startGateway(gatewayConfig(url));
    gateways.push(gw);
    const mcp = `${gw.base}/mcp`;
    const unknown = await initialize(mcp, `ghk_${'x'.repeat(43)}`);
    expect(unknown.status).toBe(401);
    expect(await initialize(mcp, expired)).toEqual(unknown);
    expect((await initialize(mcp, shortLived)).status).toBe(200);
    // Cached as valid, it still expires on time: the cache keeps the expiry, not the verdict.
    await new Promise((r) => setTimeout(r, Math.max(0, now + 1_600 - Date.now())));
    expect(await initialize(mcp, shortLived)).toEqual(unknown);
  });

  it('PostgreSQL unreachable at start: the gateway starts; keyed requests get 503, never an allow', async () => {
    const closed = await freePort();
    const gw = await startGateway(gatewayConfig(storeUrl(schema, `127.0.0.1:${closed}`)));
    gateways.push(gw);
    const r = await initialize(`${gw.base}/mcp`, `ghk_${'y'.repeat(43)}`);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).error.message).toBe(
      'Service Unavailable: the API key store is unavailable; retry shortly',
    );
    // No key is still a 401 (nothing to look up); the gateway itself is healthy.
    expect((await initialize(`${gw.base}/mcp`, undefined)).status).toBe(401);
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
  });

  it('verifications are cached both ways for cache_ttl; a miss during an outage is refused', async () => {
    const relay = new PgRelay();
    relays.push(relay);
    await relay.start();
    const store = new PgApiKeyStore(storeUrl(schema, `127.0.0.1:${relay.port}`), { cacheTtlMs: 60_000 });
    stores.push(store);
    const now = Date.now();
    const good = await store.create({ name: 'cached', groups: ['g'], now });
    const junk = `ghk_${'z'.repeat(43)}`;
    expect((await store.verify(good, now))?.name).toBe('cached');
    expect(await store.verify(junk, now)).toBeUndefined();
    await relay.cut();
    // Both answers come from the cache, synchronously, without the database.
    expect(store.verify(good, now + 1)).toMatchObject({ name: 'cached' });
    expect(store.verify(junk, now + 1)).toBeUndefined();
    // A key never seen needs the database: it is refused as unavailable, not as unknown.
    await expect(store.verify(`ghk_${'w'.repeat(43)}`, now + 1)).rejects.toMatchObject({
      httpStatus: 503,
      code: 'ERR_KEY_STORE_UNAVAILABLE',
    });
    // Past the ttl, even the cached key needs the database again.
    await expect(store.verify(good, now + 60_001)).rejects.toMatchObject({ httpStatus: 503 });
  });

  it('the database cut off under a running `gatehouse serve`: 503, the process stays up, and recovers', async () => {
    const relay = new PgRelay();
    relays.push(relay);
    await relay.start();
    const file = join(dir, 'serve.yaml');
    writeFileSync(file, gatewayConfig(storeUrl(schema, `127.0.0.1:${relay.port}`)));
    const key = (await cli('create', '--name', 'serve-bot')).stdout.trim();
    const child = spawn(process.execPath, [MAIN, 'serve', '-c', file, '--host', '127.0.0.1', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    await waitFor(() => /Gatehouse listening on (\S+)/.test(out), `serve to listen:\n${out}`, 15_000);
    const base = /Gatehouse listening on (\S+)/.exec(out)![1]!.replace('localhost', '127.0.0.1');
    const mcp = `${base}/mcp`;
    expect((await initialize(mcp, key)).status).toBe(200);

    await relay.cut();
    await new Promise((r) => setTimeout(r, 400)); // past cache_ttl (300ms)
    for (const k of [key, `ghk_${'v'.repeat(43)}`]) {
      const r = await initialize(mcp, k);
      expect(r.status).toBe(503);
      expect(r.body).toContain('the API key store is unavailable');
    }
    expect(child.exitCode).toBeNull();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    // The log line was written before the 503; the pipe may deliver it a little later.
    await waitFor(() => out.includes('API key store (PostgreSQL) unavailable'), `the outage logged:\n${out}`);

    await relay.start(relay.port);
    await waitFor(async () => (await initialize(mcp, key)).status === 200, 'recovery', 10_000);
    await waitFor(
      () => out.includes('API key store (PostgreSQL) reachable again'),
      `the recovery logged:\n${out}`,
    );

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});

describe('the verification cache', () => {
  it('is bounded, and junk keys evict only junk', () => {
    const cache = new VerifyCache(10_000, 2);
    const record = {
      name: 'k',
      agent: 'k',
      groups: [],
      roles: [],
      createdAt: 0,
      expiresAt: undefined,
      revokedAt: undefined,
    };
    cache.set('good', record, 0);
    for (let i = 0; i < 5; i++) cache.set(`junk${i}`, undefined, 0);
    expect(cache.size).toEqual({ found: 1, unknown: 2 });
    expect(cache.get('good', 1)).toBe(record);
    expect(cache.get('junk4', 1)).toBeNull();
    expect(cache.get('junk0', 1)).toBeUndefined(); // evicted, oldest first
    expect(cache.get('good', 10_000)).toBeUndefined(); // expired
    const off = new VerifyCache(0);
    off.set('good', record, 0);
    expect(off.get('good', 0)).toBeUndefined();
  });
});
