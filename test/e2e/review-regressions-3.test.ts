// Regressions of the third review (identity, authz, REST), end to end with the official SDK client, a real
// IdP (oidc-provider) and real upstreams: each failed before its fix. The pure ones are in
// test/unit/review-regressions-3.test.ts.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RestEcho, startRestEcho } from '../fixtures/rest-echo.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const PUBLIC = 'https://gw.example.test';

type ToolResult = { content: { type: string; text?: string }[]; isError?: boolean };

async function connect(url: string, token?: string): Promise<Client> {
  const c = new Client({ name: 'review-3', version: '1' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
    }),
  );
  return c;
}

function initialize(url: string, token: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'r3', version: '1' } },
    }),
  });
}

describe('third review: identity and authz', () => {
  let idp: Idp;
  let shop: FixtureHandle;
  let docs: FixtureHandle;
  let brokenJwks: Server;
  let gw: RunningGateway;

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'restock-item'] });
    docs = await startFixture({
      name: 'docs',
      resources: ['file:///public/readme.md', 'file:///private/salaries.csv'],
      templates: ['file:///public/{name}', 'file:///private/{name}'],
    });
    // An IdP whose JWKS endpoint fails (a 500 during an outage or a deploy).
    brokenJwks = createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error');
    });
    await new Promise<void>((r) => brokenJwks.listen(0, '127.0.0.1', r));
    const jwksPort = (brokenJwks.address() as AddressInfo).port;
    gw = await startGateway(`
public_url: ${PUBLIC}
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
  docs: { type: streamable-http, url: "${docs.url}" }
routes:
  - path: /shop
    upstreams: [shop]
    tools: { prefix: never }
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
    acl:
      default: { allow: [group:customer-support, group:warehouse-ops] }
      tools:
        "shop:restock-item": { allow: [group:warehouse-ops] }
  - path: /outage
    upstreams: [shop]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "http://127.0.0.1:${jwksPort}/jwks" }
  - path: /docs
    upstreams: [docs]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
    acl:
      default: { allow: [staff] }
      resources:
        "docs:file:///private/*": { deny: [contractors] }
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await docs?.close();
    brokenJwks?.closeAllConnections();
    await new Promise<void>((r) => (brokenJwks ? brokenJwks.close(() => r()) : r()));
    await idp?.close().catch(() => {});
  });

  it('a JWT without exp, however well signed and addressed, is refused (RFC 9068: it would never expire)', async () => {
    const forever = await idp.signJwt(
      {
        iss: idp.issuer,
        aud: `${PUBLIC}/shop`,
        sub: 'eternal',
        groups: ['customer-support'],
        scope: 'mcp',
        iat: Math.floor(Date.now() / 1000),
      },
      { typ: 'at+jwt' },
    );
    const r = await initialize(`${gw.base}/shop`, forever);
    expect(r.status).toBe(401);
    // The same token with an expiry is fine: only the missing exp was refused.
    const expiring = await idp.signJwt(
      {
        iss: idp.issuer,
        aud: `${PUBLIC}/shop`,
        sub: 'mortal',
        groups: ['customer-support'],
        scope: 'mcp',
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 300,
      },
      { typ: 'at+jwt' },
    );
    expect((await initialize(`${gw.base}/shop`, expiring)).status).toBe(200);
  });

  it('an IdP whose JWKS endpoint fails gives 503 (our side), not a 401 that sends clients to re-authenticate', async () => {
    const token = await idp.token({ sub: 'u', groups: ['customer-support'], resource: `${PUBLIC}/outage` });
    const r = await initialize(`${gw.base}/outage`, token);
    expect(r.status).toBe(503);
    expect(r.headers.get('www-authenticate')).toBeNull();
  });

  it('a user whose sub reads "group:warehouse-ops" is not in that group', async () => {
    const token = await idp.token({
      sub: 'group:warehouse-ops',
      groups: ['customer-support'],
      resource: `${PUBLIC}/shop`,
    });
    const c = await connect(`${gw.base}/shop`, token);
    try {
      expect((await c.listTools()).tools.map((t) => t.name)).toEqual(['list-orders']);
      await expect(c.callTool({ name: 'restock-item', arguments: {} })).rejects.toThrow(
        'Unknown tool: restock-item',
      );
      expect((await shop.state()).calls.some((x) => x.tool === 'restock-item')).toBe(false);
    } finally {
      await c.close();
    }
  });

  it('a denied resource cannot be read through dot segments or encodings of its URI', async () => {
    const token = await idp.token({
      sub: 'carl',
      groups: ['staff', 'contractors'],
      resource: `${PUBLIC}/docs`,
    });
    const c = await connect(`${gw.base}/docs`, token);
    try {
      await expect(c.readResource({ uri: 'file:///private/salaries.csv' })).rejects.toThrow(
        /Unknown resource/,
      );
      for (const uri of [
        'file:///public/..%2Fprivate%2Fsalaries.csv',
        'file:///public/../private/salaries.csv',
        'FILE:///private/salaries.csv',
      ]) {
        await expect(c.readResource({ uri }), uri).rejects.toThrow(`Unknown resource: ${uri}`);
      }
      const ok = await c.readResource({ uri: 'file:///public/readme.md' });
      expect(JSON.stringify(ok.contents)).toContain('docs:file:///public/readme.md');
    } finally {
      await c.close();
    }
  });
});

describe('third review: REST upstream', () => {
  let api: RestEcho;
  let gw: RunningGateway;
  let client: Client;

  beforeAll(async () => {
    api = await startRestEcho();
    const { host } = new URL(api.origin);
    gw = await startGateway(`
upstreams:
  api:
    type: rest
    base_url: "http://svc:hunter2@${host}/api"
    query: { tenant: acme }
    tools:
      - name: get-order
        method: GET
        path: /echo/orders/{orderId}
        parameters: [{ name: orderId, in: path, schema: { type: string } }]
      - name: search
        method: GET
        path: /echo/search
        parameters:
          - { name: tenant, in: query, schema: { type: string } }
          - { name: filter, in: query, schema: { type: object } }
      - name: note
        method: GET
        path: /echo/note
        parameters: [{ name: X-Note, in: header, schema: { type: string } }]
      - name: tally
        method: POST
        path: /echo/tally
        request_body:
          content:
            application/json:
              schema:
                type: object
                properties: { counts: { type: object, additionalProperties: { type: integer } } }
      - { name: redirect-outside, method: GET, path: /redirect-outside }
routes:
  - path: /mcp
    upstreams: [api]
    tools: { prefix: never }
health: { interval: 0 }
`);
    client = await connect(`${gw.base}/mcp`);
  });
  afterAll(async () => {
    await client?.close();
    await gw?.close();
    await api?.close();
  });

  const call = (name: string, args: Record<string, unknown>) =>
    client.callTool({ name, arguments: args }) as Promise<ToolResult>;

  it('a path argument with a dot segment, in any spelling, never reaches the API', async () => {
    const before = api.seen.length;
    for (const orderId of ['../admin', '..%2Fadmin', '..\\admin', '%252e%252e%252fadmin', '..;x']) {
      const r = await call('get-order', { orderId });
      expect(r.isError, orderId).toBe(true);
      expect(r.content[0]!.text).toContain('it would change the path');
    }
    expect(api.seen.length).toBe(before);
  });

  it("an argument cannot override the gateway's static query parameter", async () => {
    const before = api.seen.length;
    for (const args of [{ tenant: 'globex' }, { filter: { tenant: 'globex' } }]) {
      const r = await call('search', args);
      expect(r.isError).toBe(true);
      expect(r.content[0]!.text).toContain('would set the query parameter "tenant"');
    }
    expect(api.seen.length).toBe(before);
    const ok = await call('search', { filter: { status: 'open' } });
    expect(ok.isError).toBeFalsy();
    expect(api.seen.at(-1)!.url).toBe('/api/echo/search?status=open&tenant=acme');
  });

  it('a header argument HTTP cannot carry is an argument error, not an unreachable API', async () => {
    const r = await call('note', { 'X-Note': 'a → b' });
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toContain('Invalid arguments for tool note');
    const ready = (await (await fetch(`${gw.base}/readyz`)).json()) as {
      upstreams: Record<string, { status: string }>;
    };
    expect(ready.upstreams.api!.status).not.toBe('down');
  });

  it('an invalid value under a key with "%" is named like any invalid argument', async () => {
    const r = await call('tally', { counts: { '%': 'many' } });
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toBe('Invalid arguments for tool tally: argument "counts.%" must be integer');
  });

  it("the base URL's password is never shown to clients", async () => {
    const r = await call('redirect-outside', {});
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toContain('not followed');
    expect(r.content[0]!.text).not.toContain('hunter2');
  });
});

describe('API keys and OAuth users are separate callers', () => {
  let idp: Idp;
  let shop: FixtureHandle;
  let gw: RunningGateway;
  let dir: string;
  let aliceKey: string;
  const AUD = 'https://gw.example.test/mcp';

  beforeAll(async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { ApiKeyStore } = await import('../../src/auth/api-keys.ts');
    dir = mkdtempSync(join(tmpdir(), 'gh-ns-'));
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    // A key named like the user: it must get neither her session nor her user: ACL entries.
    aliceKey = store.create({ name: 'alice', groups: ['staff'], now: Date.now() });
    store.close();
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['payroll', 'search'] });
    gw = await startGateway(`
public_url: https://gw.example.test
api_keys: { store: "${join(dir, 'keys.db')}" }
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /mcp
    upstreams: [shop]
    auth:
      api_keys: true
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
    acl:
      default: { allow: [staff] }
      tools:
        "shop:payroll": { allow: [user:alice] }
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await idp?.close().catch(() => {});
    const { rmSync } = await import('node:fs');
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (bearer: string) => {
    const c = new Client({ name: 'ns', version: '1' });
    const t = new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    });
    await c.connect(t);
    return { c, sid: t.sessionId! };
  };

  it('a key named like a user matches neither her user: entries nor her session', async () => {
    const userToken = await idp.token({ sub: 'alice', groups: ['staff'], resource: AUD });
    const user = await connect(userToken);
    const key = await connect(aliceKey);
    try {
      expect((await user.c.listTools()).tools.map((t) => t.name).sort()).toEqual(['payroll', 'search']);
      expect((await key.c.listTools()).tools.map((t) => t.name)).toEqual(['search']);
      // The user's session id, presented with the key: as if it did not exist.
      const r = await fetch(`${gw.base}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${aliceKey}`,
          'mcp-session-id': user.sid,
          'mcp-protocol-version': '2025-11-25',
        },
        body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
      });
      expect(r.status).toBe(404);
    } finally {
      await user.c.close();
      await key.c.close();
    }
  });
});
