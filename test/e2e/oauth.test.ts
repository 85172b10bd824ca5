// OAuth 2.1 resource server with a real IdP (oidc-provider on 127.0.0.1): RFC 9728 metadata, the 401
// challenge, JWT checks (issuer, audience, expiry, signature), groups → ACL, fail-closed on an IdP outage.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const AUDIENCE = 'https://gw.example.test/ecommerce-mcp';

describe('OAuth 2.1 resource server', () => {
  let idp: Idp;
  let other: Idp;
  let shop: FixtureHandle;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    idp = await startIdp();
    other = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'cancel-order', 'restock-item'] });
    gw = await startGateway(`
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audience: "${AUDIENCE}", scopes: [mcp] }
    acl:
      default: { allow: [warehouse-ops, customer-support] }
      tools:
        "shop:cancel-order": { allow: [customer-support] }
        "shop:restock-item": { allow: [warehouse-ops] }
health: { interval: 0 }
`);
    url = `${gw.base}/ecommerce-mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await other?.close().catch(() => {});
    await idp?.close().catch(() => {});
  });

  const init = (token?: string) =>
    fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });

  it('no token: 401 naming the resource metadata, which names the IdP', async () => {
    const r = await init();
    expect(r.status).toBe(401);
    const challenge = r.headers.get('www-authenticate')!;
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
    expect(metadataUrl.endsWith('/.well-known/oauth-protected-resource/ecommerce-mcp')).toBe(true);
    expect(challenge).toContain('scope="mcp"');
    const doc = (await (
      await fetch(`${gw.base}/.well-known/oauth-protected-resource/ecommerce-mcp`)
    ).json()) as Record<string, unknown>;
    expect(doc).toEqual({
      resource: AUDIENCE,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp'],
    });
  });

  it('a valid token: the caller sees and calls exactly what its groups allow', async () => {
    const token = await idp.token({ sub: 'wendy', groups: ['warehouse-ops'], resource: AUDIENCE });
    const c = new Client({ name: 'oauth-test', version: '1' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(['list-orders', 'restock-item']);
      await expect(c.callTool({ name: 'cancel-order', arguments: {} })).rejects.toThrow(/Unknown tool/);
    } finally {
      await c.close();
    }
  });

  it('wrong audience, expired, tampered, alg none, another IdP: the same 401 as no token', async () => {
    const none = (await init()).status;
    const good = await idp.token({ sub: 'x', groups: ['warehouse-ops'], resource: AUDIENCE });
    const [h, p] = good.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, groups: ['customer-support'] })).toString('base64url')}.${good.split('.')[2]}`;
    const algNone = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    const tokens = [
      await idp.token({ sub: 'x', groups: ['warehouse-ops'], resource: 'https://elsewhere.example/mcp' }),
      await idp.token({ sub: 'x', groups: ['warehouse-ops'], resource: AUDIENCE, expiresIn: -120 }),
      tampered,
      algNone,
      await other.token({ sub: 'x', groups: ['warehouse-ops'], resource: AUDIENCE }),
    ];
    for (const t of tokens) {
      const r = await init(t);
      expect(r.status).toBe(none);
      expect(r.headers.get('www-authenticate')).toContain('resource_metadata=');
    }
  });

  it('a valid token in none of the route groups: 403', async () => {
    const token = await idp.token({ sub: 'mark', groups: ['marketing'], resource: AUDIENCE });
    expect((await init(token)).status).toBe(403);
  });

  it('the IdP unreachable when its keys must be fetched: 503, never an allow', async () => {
    const token = await other.token({ sub: 'x', groups: ['warehouse-ops'], resource: AUDIENCE });
    await other.close();
    const down = await startGateway(`
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth: { issuer: "${other.issuer}", jwks_uri: "${other.jwksUri}", audience: "${AUDIENCE}" }
health: { interval: 0 }
`);
    try {
      const r = await fetch(`${down.base}/ecommerce-mcp`, {
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
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'x', version: '1' },
          },
        }),
      });
      expect(r.status).toBe(503);
      expect(await r.text()).toContain('identity provider');
    } finally {
      await down.close();
    }
  });
});
