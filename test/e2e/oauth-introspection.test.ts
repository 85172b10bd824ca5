// OAuth beyond plain JWTs, with a real IdP (oidc-provider on 127.0.0.1): opaque tokens by RFC 7662
// introspection (cache, negative cache, revocation, IdP failures → 503), the JWT `typ` check, tenant and
// claim values on the principal, and the 401 challenge behind a trusted (or untrusted) reverse proxy.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OAuthRouteOptions, OAuthValidator } from '../../src/auth/oauth.ts';
import { GatehouseError } from '../../src/mcp/errors.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const AUDIENCE = 'https://gw.example.test/ecommerce-mcp';
const ACL = `
    acl:
      default: { allow: [warehouse-ops, customer-support] }
      tools:
        "shop:cancel-order": { allow: [customer-support] }
        "shop:restock-item": { allow: [warehouse-ops] }`;

const initBody = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
});

function init(url: string, token?: string, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...extra,
    },
    body: initBody,
  });
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

describe('OAuth: opaque tokens by introspection (RFC 7662)', () => {
  let idp: Idp;
  let shop: FixtureHandle;
  let gw: RunningGateway;
  let url: string;

  const gatewayYaml = (extra = '') => `
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth:
        issuer: "${idp.issuer}"
        audience: "${AUDIENCE}"
        introspection: { client_id: ${idp.introspectionClient.clientId}, client_secret: { env: IDP_SECRET }${extra} }
${ACL}
health: { interval: 0 }
`;
  const env = () => ({ IDP_SECRET: idp.introspectionClient.clientSecret });

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'cancel-order', 'restock-item'] });
    // No endpoint: it is discovered from the issuer's metadata; the secret comes from the environment.
    gw = await startGateway(gatewayYaml(), env());
    url = `${gw.base}/ecommerce-mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await idp?.close().catch(() => {});
  });

  it('an opaque token is introspected once: the caller sees and calls what its groups allow', async () => {
    const token = await idp.token({
      sub: 'wendy',
      groups: ['warehouse-ops'],
      resource: AUDIENCE,
      format: 'opaque',
    });
    expect(token).not.toContain('.');
    const before = idp.introspections();
    const c = new Client({ name: 'introspection-test', version: '1' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(['list-orders', 'restock-item']);
      await expect(c.callTool({ name: 'cancel-order', arguments: {} })).rejects.toThrow(/Unknown tool/);
      expect((await c.callTool({ name: 'restock-item', arguments: {} })).isError).toBeFalsy();
    } finally {
      await c.close();
    }
    // initialize, initialized, tools/list, two calls, DELETE: one introspection, the rest from the cache.
    expect(idp.introspections()).toBe(before + 1);
  });

  it('a valid opaque token in none of the route groups: 403', async () => {
    const token = await idp.token({
      sub: 'mark',
      groups: ['marketing'],
      resource: AUDIENCE,
      format: 'opaque',
    });
    expect((await init(url, token)).status).toBe(403);
  });

  it('revoked, unknown and wrong-audience opaque tokens: the same 401 as no token', async () => {
    const none = await init(url);
    expect(none.status).toBe(401);
    const challenge = none.headers.get('www-authenticate');
    const noneBody = await none.text();
    const revoked = await idp.token({
      sub: 'x',
      groups: ['warehouse-ops'],
      resource: AUDIENCE,
      format: 'opaque',
    });
    await idp.revoke(revoked);
    const tokens = [
      revoked,
      'an-opaque-token-the-idp-never-issued',
      await idp.token({
        sub: 'x',
        groups: ['warehouse-ops'],
        resource: 'https://elsewhere.example/mcp',
        format: 'opaque',
      }),
    ];
    for (const t of tokens) {
      const before = idp.introspections();
      const r = await init(url, t);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe(challenge);
      expect(await r.text()).toBe(noneBody);
      expect(idp.introspections()).toBe(before + 1);
      // Refusals are remembered briefly: retrying the same bad token does not reach the IdP again.
      expect((await init(url, t)).status).toBe(401);
      expect(idp.introspections()).toBe(before + 1);
    }
  });

  it('cache_ttl: an answer is reused until it ends (a revocation shows after it); 0 asks every time', async () => {
    const cached = await idp.token({
      sub: 'w',
      groups: ['warehouse-ops'],
      resource: AUDIENCE,
      format: 'opaque',
    });
    expect((await init(url, cached)).status).toBe(200);
    await idp.revoke(cached);
    const before = idp.introspections();
    expect((await init(url, cached)).status).toBe(200);
    expect(idp.introspections()).toBe(before);

    const fresh = await startGateway(gatewayYaml(', cache_ttl: 0'), env());
    try {
      const freshUrl = `${fresh.base}/ecommerce-mcp`;
      const token = await idp.token({
        sub: 'w',
        groups: ['warehouse-ops'],
        resource: AUDIENCE,
        format: 'opaque',
      });
      const start = idp.introspections();
      expect((await init(freshUrl, token)).status).toBe(200);
      expect((await init(freshUrl, token)).status).toBe(200);
      expect(idp.introspections()).toBe(start + 2);
      await idp.revoke(token);
      expect((await init(freshUrl, token)).status).toBe(401);
    } finally {
      await fresh.close();
    }
  });

  it('JWTs are still verified locally (tokens: opaque), without asking the IdP', async () => {
    const jwt = await idp.token({ sub: 'wendy', groups: ['warehouse-ops'], resource: AUDIENCE });
    const before = idp.introspections();
    expect((await init(url, jwt)).status).toBe(200);
    expect(idp.introspections()).toBe(before);
  });

  it('the IdP down, answering 500, or refusing the gateway credentials: 503, never an allow', async () => {
    const down = await startIdp();
    const token = await down.token({
      sub: 'w',
      groups: ['warehouse-ops'],
      resource: AUDIENCE,
      format: 'opaque',
    });
    const broken = await listen((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
    });
    const gateways: RunningGateway[] = [];
    try {
      const route = (issuer: string, introspection: string) => `
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth: { issuer: "${issuer}", audience: "${AUDIENCE}", introspection: ${introspection} }
${ACL}
health: { interval: 0 }
`;
      const { clientId, clientSecret } = down.introspectionClient;
      gateways.push(
        await startGateway(
          route(down.issuer, `{ client_id: ${clientId}, client_secret: "${clientSecret}" }`),
        ),
        await startGateway(
          route(
            idp.issuer,
            `{ endpoint: "${broken.url}/introspect", client_id: a, client_secret: b, tokens: all }`,
          ),
        ),
        await startGateway(
          route(
            idp.issuer,
            `{ client_id: ${idp.introspectionClient.clientId}, client_secret: not-the-secret }`,
          ),
        ),
      );
      await down.close();
      for (const g of gateways) {
        for (let i = 0; i < 2; i++) {
          // Twice: a failure is never cached as a refusal (or an allow).
          const r = await init(`${g.base}/ecommerce-mcp`, token);
          expect(r.status).toBe(503);
          expect(await r.text()).toContain('identity provider');
        }
      }
    } finally {
      for (const g of gateways) await g.close();
      await closeServer(broken.server);
      await down.close().catch(() => {});
    }
  });
});

describe('OAuth: JWT typ, tenant and claims, trusted proxies', () => {
  let idp: Idp;
  let shop: FixtureHandle;
  const gateways: RunningGateway[] = [];

  const start = async (auth: string, top = '', acl = ACL) => {
    const g = await startGateway(`
${top}
upstreams:
  shop: { type: streamable-http, url: "${shop.url}" }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audience: "${AUDIENCE}", scopes: [mcp]${auth} }
${acl}
health: { interval: 0 }
`);
    gateways.push(g);
    return `${g.base}/ecommerce-mcp`;
  };
  const claims = () => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: idp.issuer,
      aud: AUDIENCE,
      sub: 'tom',
      groups: ['warehouse-ops'],
      iat: now,
      exp: now + 300,
    };
  };

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: ['list-orders', 'cancel-order', 'restock-item'] });
  });
  afterAll(async () => {
    for (const g of gateways) await g.close();
    await shop?.close();
    await idp?.close().catch(() => {});
  });

  it('typ: at+jwt and jwt (any case, application/ optional) pass; an ID token or a logout token is refused', async () => {
    const url = await start('');
    const none = await init(url);
    for (const typ of ['at+jwt', 'JWT', 'application/at+JWT', undefined]) {
      const t = await idp.signJwt(claims(), typ === undefined ? {} : { typ });
      expect((await init(url, t)).status, String(typ)).toBe(200);
    }
    for (const typ of ['id_token+jwt', 'logout+jwt', 'application/secevent+jwt']) {
      const r = await init(url, await idp.signJwt(claims(), { typ }));
      expect(r.status, typ).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe(none.headers.get('www-authenticate'));
    }
  });

  it('require_typ refuses a JWT without typ; token_types replaces the accepted list', async () => {
    const strict = await start(', require_typ: true');
    expect((await init(strict, await idp.signJwt(claims()))).status).toBe(401);
    expect((await init(strict, await idp.signJwt(claims(), { typ: 'at+jwt' }))).status).toBe(200);
    const custom = await start(', token_types: [application/custom+jwt]');
    expect((await init(custom, await idp.signJwt(claims(), { typ: 'custom+jwt' }))).status).toBe(200);
    expect((await init(custom, await idp.signJwt(claims(), { typ: 'at+jwt' }))).status).toBe(401);
    // The IdP's own tokens (typ at+jwt) are refused as well: the check is on the header, not the issuer.
    const real = await idp.token({ sub: 'w', groups: ['warehouse-ops'], resource: AUDIENCE });
    expect((await init(custom, real)).status).toBe(401);
  });

  it('trust_proxy: true → the challenge names the forwarded host and scheme; default → they are ignored', async () => {
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'mcp.example.com' };
    const metadataUrl = async (u: string) => {
      const r = await init(u, undefined, forwarded);
      expect(r.status).toBe(401);
      return /resource_metadata="([^"]+)"/.exec(r.headers.get('www-authenticate')!)![1];
    };
    const trusted = await start('', 'trust_proxy: true');
    expect(await metadataUrl(trusted)).toBe(
      'https://mcp.example.com/.well-known/oauth-protected-resource/ecommerce-mcp',
    );
    const listed = await start('', 'trust_proxy: [127.0.0.1/32]');
    expect(await metadataUrl(listed)).toBe(
      'https://mcp.example.com/.well-known/oauth-protected-resource/ecommerce-mcp',
    );
    for (const top of ['', 'trust_proxy: false', 'trust_proxy: [10.0.0.0/8]']) {
      const u = await start('', top);
      expect(await metadataUrl(u), top).toBe(
        `${new URL(u).origin}/.well-known/oauth-protected-resource/ecommerce-mcp`,
      );
    }
    // A forwarded host that could break out of the quoted parameter is not used.
    const r = await init(trusted, undefined, { 'x-forwarded-host': 'evil.example", error="x' });
    expect(r.headers.get('www-authenticate')).toContain(
      `resource_metadata="${new URL(trusted).origin}/.well-known/oauth-protected-resource/ecommerce-mcp"`,
    );
  });

  it('tenant and claim values reach the ACL (tenant:<t>, claim:<path>=<value>)', async () => {
    const url = await start(
      ', tenant_claim: tid, claims: [org.dept]',
      '',
      `
    acl:
      default: { allow: [warehouse-ops] }
      tools:
        "shop:cancel-order": { allow: ["tenant:acme"] }
        "shop:restock-item": { allow: ["claim:org.dept=sre"] }`,
    );
    const tools = async (claims: Record<string, unknown>, format: 'jwt' | 'opaque' = 'jwt') => {
      const token = await idp.token({
        sub: 'u',
        groups: ['warehouse-ops'],
        resource: AUDIENCE,
        claims,
        format,
      });
      const c = new Client({ name: 'claims-test', version: '1' });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        }),
      );
      try {
        return (await c.listTools()).tools.map((t) => t.name).sort();
      } finally {
        await c.close();
      }
    };
    expect(await tools({ tid: 'acme', org: { dept: 'eng' } })).toEqual(['cancel-order', 'list-orders']);
    expect(await tools({ tid: 'globex', org: { dept: ['eng', 'sre'] } })).toEqual([
      'list-orders',
      'restock-item',
    ]);
    expect(await tools({})).toEqual(['list-orders']);
  });
});

describe('OAuthValidator with the real IdP: claims → principal, timeouts', () => {
  let idp: Idp;
  const base = (): OAuthRouteOptions => ({
    issuer: idp.issuer,
    jwksUri: idp.jwksUri,
    resource: AUDIENCE,
    relaxedAudience: false,
    leewayMs: 30_000,
    subjectClaim: 'sub',
    groupsClaim: 'groups',
    agentClaim: undefined,
    tenantClaim: 'tid',
    claims: ['org.dept', 'level', 'admin', 'missing', 'org'],
    scopes: [],
    metadataUrl: () => 'http://127.0.0.1/.well-known/oauth-protected-resource',
  });
  const extra = { tid: 'acme', org: { dept: ['eng', 'sre', 7] }, level: 3, admin: false };

  beforeAll(async () => {
    idp = await startIdp();
  });
  afterAll(async () => {
    await idp?.close().catch(() => {});
  });

  it('tenant_claim and claims, the same from a JWT and from introspection', async () => {
    const expected = {
      subject: 'olga',
      groups: ['ops'],
      tenant: 'acme',
      scopes: ['mcp'],
      claimValues: { 'org.dept': ['eng', 'sre', '7'], level: ['3'], admin: ['false'] },
    };
    const jwt = new OAuthValidator(base());
    const token = await idp.token({ sub: 'olga', groups: ['ops'], resource: AUDIENCE, claims: extra });
    expect(await jwt.verify(token, Date.now())).toMatchObject(expected);

    const { clientId, clientSecret } = idp.introspectionClient;
    const introspecting = new OAuthValidator({
      ...base(),
      introspection: {
        endpoint: idp.introspectionEndpoint,
        clientId,
        clientSecret,
        tokens: 'opaque',
        cacheTtlMs: 0,
      },
    });
    const opaque = await idp.token({
      sub: 'olga',
      groups: ['ops'],
      resource: AUDIENCE,
      claims: extra,
      format: 'opaque',
    });
    const p = await introspecting.verify(opaque, Date.now());
    expect(p).toMatchObject(expected);
    expect(p.claimValues).toEqual(expected.claimValues);
    expect(p.agent).toMatch(/^client-/);
  });

  it('an introspection that does not answer within the timeout: 503', async () => {
    const hanging = await listen(() => {});
    try {
      const v = new OAuthValidator({
        ...base(),
        introspection: {
          endpoint: `${hanging.url}/introspect`,
          clientId: 'a',
          clientSecret: 'b',
          tokens: 'opaque',
          cacheTtlMs: 60_000,
          timeoutMs: 200,
        },
      });
      const err = await v.verify('opaque-token', Date.now()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatehouseError);
      expect((err as GatehouseError).httpStatus).toBe(503);
    } finally {
      await closeServer(hanging.server);
    }
  });
});
