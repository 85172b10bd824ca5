// API keys and per-tool ACLs end to end with the official SDK client: the Kong recipe's matrix of
// REQUIREMENTS.md (8 tools, warehouse-ops and customer-support) on keys made by `gatehouse keys`.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { ApiKeyStore } from '../../src/auth/api-keys.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { RECIPE_MATRIX, RECIPE_TOOLS } from '../helpers/recipe.ts';

const TOOLS = RECIPE_TOOLS;
const MATRIX = RECIPE_MATRIX;

describe('API keys and the Kong recipe ACL', () => {
  let dir: string;
  let shop: FixtureHandle;
  let gateway: Gateway;
  let url: string;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-acl-'));
    shop = await startFixture({ name: 'shop', tools: TOOLS });
    writeFileSync(
      join(dir, 'gw.yaml'),
      `listen: { port: 0 }
api_keys: { store: keys.db }
health: { interval: 0 }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth: { api_keys: true }
    acl:
      default: { allow: [warehouse-ops, customer-support] }
      tools:
        "shop:cancel-order": { allow: [customer-support] }
        "shop:restock-item": { allow: [warehouse-ops] }
        "shop:get-customer": { allow: [customer-support] }
        "shop:update-customer-contact": { allow: [customer-support] }
`,
    );
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    const now = Date.now();
    keys.warehouse = store.create({ name: 'wh-bot', groups: ['warehouse-ops'], now });
    keys.support = store.create({ name: 'cs-bot', groups: ['customer-support'], now });
    keys.marketing = store.create({ name: 'mk-bot', groups: ['marketing'], now });
    keys.revoked = store.create({ name: 'old-bot', groups: ['warehouse-ops'], now });
    keys.expired = store.create({
      name: 'gone-bot',
      groups: ['warehouse-ops'],
      now: now - 10_000,
      expiresAt: now - 1,
    });
    store.revoke('old-bot', now);
    store.close();
    gateway = await createGateway(await loadConfigFile(join(dir, 'gw.yaml')), {
      logger: pino({ level: 'silent' }),
    });
    url = `${(await gateway.start()).replace('localhost', '127.0.0.1')}/ecommerce-mcp`;
  });
  afterAll(async () => {
    await gateway?.stop();
    await shop?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(key: string): Promise<Client> {
    const client = new Client({ name: 'acl-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    return client;
  }

  for (const who of ['warehouse', 'support'] as const) {
    it(`${who}: tools/list is exactly its column; permitted calls succeed; forbidden ones are refused before the upstream`, async () => {
      const c = await connect(keys[who]!);
      try {
        const allowed = TOOLS.filter((t) => MATRIX[t]![who]);
        expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual([...allowed].sort());
        const before = (await shop.state()).calls.length;
        for (const tool of TOOLS) {
          const outcome = await c.callTool({ name: tool, arguments: {} }).then(
            () => 'ok',
            (e: unknown) => e,
          );
          if (MATRIX[tool]![who]) expect(outcome, tool).toBe('ok');
          else {
            expect(outcome, tool).toBeInstanceOf(McpError);
            expect((outcome as McpError).code).toBe(-32602);
            expect((outcome as McpError).message).toContain(`Unknown tool: ${tool}`);
          }
        }
        const calls = (await shop.state()).calls.slice(before).map((x) => x.tool);
        expect(calls.sort()).toEqual([...allowed].sort()); // the upstream saw only the permitted calls
      } finally {
        await c.close();
      }
    });
  }

  it('a key in none of the groups the ACL names is refused with 403 (groups_required, fail closed)', async () => {
    const r = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${keys.marketing}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    expect(r.status).toBe(403);
    expect(await r.text()).toContain('none of your groups');
  });

  it('no key, a wrong, revoked or expired key: the same 401 with WWW-Authenticate', async () => {
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const answers = [];
    for (const auth of [
      undefined,
      'Bearer ghk_wrong',
      `Bearer ${keys.revoked}`,
      `Bearer ${keys.expired}`,
      keys.warehouse,
    ]) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      };
      if (auth) headers.authorization = auth;
      const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(init) });
      answers.push({ status: r.status, www: r.headers.get('www-authenticate'), body: await r.text() });
    }
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.www).toBe('Bearer realm="gatehouse"');
      expect(a.body).toBe(answers[0]!.body);
    }
  });

  it('the legacy SSE transport binds its session to the key too: another key cannot post to it', async () => {
    const base = url.slice(0, url.lastIndexOf('/ecommerce-mcp'));
    const stream = await fetch(`${base}/ecommerce-mcp/sse`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${keys.support}` },
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    const endpoint = /data: (\S+)/.exec(text)![1]!;
    const post = (key: string, body: object) =>
      fetch(`${base}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
      });
    const init = {
      protocolVersion: '2024-11-05',
      capabilities: {},
      clientInfo: { name: 'old', version: '1' },
    };
    expect(
      (await post(keys.support!, { jsonrpc: '2.0', id: 1, method: 'initialize', params: init })).status,
    ).toBe(202);
    const before = (await shop.state()).calls.length;
    const stolen = await post(keys.warehouse!, {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'cancel-order', arguments: {} },
    });
    expect(stolen.status).toBe(404);
    expect((await shop.state()).calls.length).toBe(before);
    await reader.cancel();
  });

  it('the Bearer scheme is case-insensitive (RFC 9110)', async () => {
    const r = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `bearer ${keys.warehouse}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    expect(r.status).toBe(200);
    await r.body?.cancel();
  });

  it('a session cannot be used with another key: 404, as if it did not exist', async () => {
    const c = await connect(keys.warehouse!);
    try {
      const sid = (c.transport as StreamableHTTPClientTransport).sessionId!;
      const r = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${keys.support}`,
          'mcp-session-id': sid,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(r.status).toBe(404);
      await r.body?.cancel();
    } finally {
      await c.close();
    }
  });
});
