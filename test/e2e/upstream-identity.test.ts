// Identity to upstreams without token passthrough, end to end with the official SDK client: upstreams
// that verify who calls them (identity-upstream fixture) behind the gateway, a real IdP (oidc-provider)
// doing RFC 8693 token exchange. The caller's own token never reaches an upstream.

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../src/auth/api-keys.ts';
import { type IdentityUpstream, startIdentityUpstream } from '../fixtures/identity-upstream.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const PUBLIC_URL = 'https://gw.example.test';
const ROUTE_AUD = `${PUBLIC_URL}/mcp`;
const EXCHANGED_AUD = 'https://exchanged.example.test/mcp';

async function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const c = new Client({ name: 'identity-test', version: '1.0.0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return c;
}

async function whoami(c: Client, tool: string): Promise<Record<string, unknown>> {
  const res = await c.callTool({ name: tool, arguments: {} });
  expect(res.isError ?? false).toBe(false);
  const text = (res.content as { type: string; text: string }[])[0]!.text;
  return JSON.parse(text) as Record<string, unknown>;
}

describe('identity to upstreams', () => {
  let dir: string;
  let idp: Idp;
  let gatewayClient: { clientId: string; clientSecret: string };
  let asserted: IdentityUpstream;
  let assertedSse: IdentityUpstream;
  let exchanged: IdentityUpstream;
  let fixed: IdentityUpstream;
  let plain: IdentityUpstream;
  let gw: RunningGateway;
  let apiKey: string;
  const jwksUrl = Promise.withResolvers<string>();

  /** Every credential and Authorization header any upstream received. */
  const everything = () =>
    [asserted, assertedSse, exchanged, fixed, plain].flatMap((u) =>
      u.received.flatMap((r) => [r.authorization, r.credential]),
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-identity-'));
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    apiKey = await store.create({ name: 'build-bot', agent: 'ci', groups: ['builders'], now: Date.now() });
    await store.close();
    idp = await startIdp();
    gatewayClient = idp.registerClient();
    const jwt = (audience: string, header?: string) =>
      startIdentityUpstream({
        check: { kind: 'jwt', jwksUri: jwksUrl.promise, issuer: PUBLIC_URL, audience },
        ...(header ? { header } : {}),
      });
    asserted = await jwt('asserted-api');
    assertedSse = await jwt('legacy-api', 'x-gatehouse-identity');
    exchanged = await startIdentityUpstream({
      check: { kind: 'jwt', jwksUri: idp.jwksUri, issuer: idp.issuer, audience: EXCHANGED_AUD },
    });
    fixed = await startIdentityUpstream({ check: { kind: 'static', value: 's3cret-static' } });
    plain = await startIdentityUpstream({ check: { kind: 'none' } });
    gw = await startGateway(
      `
public_url: ${PUBLIC_URL}
api_keys: { store: "${join(dir, 'keys.db')}" }
upstreams:
  asserted:
    type: streamable-http
    url: "${asserted.url}"
    auth: { assertion: { audience: asserted-api } }
  legacy:
    type: sse
    url: "${assertedSse.sseUrl}"
    auth: { assertion: { audience: legacy-api, header: X-Gatehouse-Identity, ttl: 2m } }
  exchanged:
    type: streamable-http
    url: "${exchanged.url}"
    auth:
      token_exchange:
        client_id: "${gatewayClient.clientId}"
        client_secret: { env: GW_CLIENT_SECRET }
        audience: "${EXCHANGED_AUD}"
        resource: "${EXCHANGED_AUD}"
  lent:
    type: streamable-http
    url: "${exchanged.url}"
    auth:
      token_exchange:
        client_id: "${gatewayClient.clientId}"
        client_secret: { env: GW_CLIENT_SECRET }
        audience: "${EXCHANGED_AUD}"
        resource: "${EXCHANGED_AUD}"
        callers_without_token: client_credentials
  fixed:
    type: streamable-http
    url: "${fixed.url}"
    auth: { static: { value: { env: STATIC_CREDENTIAL } } }
  plain: { type: streamable-http, url: "${plain.url}" }
routes:
  - path: /mcp
    upstreams: [asserted, legacy, exchanged, lent, fixed]
    tools: { prefix: always }
    auth:
      api_keys: true
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
  - path: /open
    upstreams: [plain, asserted]
    tools: { prefix: always }
health: { interval: 0 }
`,
      { GW_CLIENT_SECRET: gatewayClient.clientSecret, STATIC_CREDENTIAL: 'Bearer s3cret-static' },
    );
    jwksUrl.resolve(`${gw.base}/.well-known/jwks.json`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.allSettled([asserted, assertedSse, exchanged, fixed, plain].map((u) => u?.close()));
    await idp?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const userToken = (sub: string, groups: string[]) => idp.token({ sub, groups, resource: ROUTE_AUD });

  it('serves the public signing key at /.well-known/jwks.json, with a kid and caching', async () => {
    const r = await fetch(`${gw.base}/.well-known/jwks.json`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const { keys } = (await r.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(typeof keys[0]!.kid).toBe('string');
    expect(keys[0]).not.toHaveProperty('d'); // never the private part
  });

  it('assertion: the upstream verifies it with the JWKS and sees the caller (sub, groups, agent), iss and aud', async () => {
    const token = await userToken('alice', ['eng', 'ops']);
    const c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
    try {
      const claims = await whoami(c, 'asserted__whoami');
      expect(claims).toMatchObject({
        iss: PUBLIC_URL,
        aud: 'asserted-api',
        sub: 'alice',
        groups: ['eng', 'ops'],
      });
      expect(String(claims.agent)).toMatch(/^client-/); // the IdP client the caller's token was issued to
      expect(Number(claims.exp) - Number(claims.iat)).toBe(300); // ttl 5m by default
      expect(typeof claims.jti).toBe('string');
      const last = asserted.received.at(-1)!;
      expect(last.verified).toBe(true);
      const kid = decodeProtectedHeader(last.credential!).kid;
      const { keys } = (await (await fetch(`${gw.base}/.well-known/jwks.json`)).json()) as {
        keys: { kid: string }[];
      };
      expect(kid).toBe(keys[0]!.kid);
      expect(everything()).not.toContain(token);
      expect(everything().some((h) => h?.includes(token))).toBe(false);
    } finally {
      await c.close();
    }
  });

  it("assertion: the gateway's own catalogue session is named as the gateway, not as a caller", () => {
    const first = asserted.received[0]!;
    expect(first.what).toBe('POST initialize');
    expect(first.verified).toBe(true);
    expect(decodeJwt(first.credential!)).toMatchObject({
      sub: 'gatehouse',
      gateway: true,
      aud: 'asserted-api',
    });
  });

  it('assertion over a legacy SSE upstream, in a custom header: on the stream and on every POST', async () => {
    const token = await userToken('bob', ['eng']);
    const c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
    try {
      const claims = await whoami(c, 'legacy__whoami');
      expect(claims).toMatchObject({ iss: PUBLIC_URL, aud: 'legacy-api', sub: 'bob', groups: ['eng'] });
      expect(Number(claims.exp) - Number(claims.iat)).toBe(120);
      const seen = assertedSse.received;
      expect(seen.some((r) => r.what === 'GET')).toBe(true);
      expect(seen.some((r) => r.what === 'POST tools/call')).toBe(true);
      for (const r of seen) {
        expect(r.verified, `${r.what}: ${r.error}`).toBe(true);
        expect(r.authorization).toBeUndefined(); // the assertion travels in its own header only
      }
    } finally {
      await c.close();
    }
  });

  it("token exchange: the upstream gets a token for its audience naming the caller, never the caller's token", async () => {
    const token = await userToken('carol', ['eng']);
    const before = idp.exchanges().length;
    const c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
    try {
      const claims = await whoami(c, 'exchanged__whoami');
      expect(claims).toMatchObject({
        iss: idp.issuer,
        aud: EXCHANGED_AUD,
        sub: 'carol',
        groups: ['eng'],
        act: { sub: gatewayClient.clientId },
      });
      const done = idp.exchanges().slice(before);
      expect(done).toEqual([
        { clientId: gatewayClient.clientId, subject: 'carol', audience: EXCHANGED_AUD, ok: true },
      ]);
      // Every header every upstream received: never the caller's token.
      expect(everything().some((h) => h?.includes(token))).toBe(false);
      expect(exchanged.received.every((r) => r.verified)).toBe(true);

      // Cached: more calls, and another session of the same token, do not go back to the IdP.
      const used = exchanged.received.at(-1)!.credential;
      await whoami(c, 'exchanged__whoami');
      const c2 = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
      try {
        await whoami(c2, 'exchanged__whoami');
      } finally {
        await c2.close();
      }
      expect(idp.exchanges().length).toBe(before + 1);
      const carols = exchanged.received.filter(
        (r) => r.credential && decodeJwt(r.credential).sub === 'carol',
      );
      expect(new Set(carols.map((r) => r.credential))).toEqual(new Set([used]));

      // Another caller: an exchange of its own.
      const dave = await userToken('dave', []);
      const c3 = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${dave}` });
      try {
        expect(await whoami(c3, 'exchanged__whoami')).toMatchObject({ sub: 'dave', aud: EXCHANGED_AUD });
      } finally {
        await c3.close();
      }
      expect(idp.exchanges().length).toBe(before + 2);
    } finally {
      await c.close();
    }
  });

  it('token exchange without a caller token: the catalogue uses client_credentials; API-key callers are refused unless lent the gateway token', async () => {
    const catalogue = exchanged.received[0]!;
    expect(catalogue.what).toBe('POST initialize');
    expect(decodeJwt(catalogue.credential!)).toMatchObject({
      sub: gatewayClient.clientId,
      aud: EXCHANGED_AUD,
    });
    const before = idp.exchanges().length;
    const c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${apiKey}` });
    try {
      // By default the gateway's own token is not lent to a caller that has none: refused, nothing sent.
      const seen = exchanged.received.length;
      const refused = await c.callTool({ name: 'exchanged__whoami', arguments: {} }).then(
        () => undefined,
        (e: unknown) => e as McpError,
      );
      expect(refused?.code).toBe(-32001);
      expect(refused?.message).toContain("needs the caller's OAuth access token");
      expect(exchanged.received.length).toBe(seen);
      // With callers_without_token: client_credentials, it acts with the gateway's token.
      expect(await whoami(c, 'lent__whoami')).toMatchObject({
        sub: gatewayClient.clientId,
        aud: EXCHANGED_AUD,
      });
      // …and an assertion upstream names the API-key caller itself.
      expect(await whoami(c, 'asserted__whoami')).toMatchObject({
        sub: 'build-bot',
        agent: 'ci',
        groups: ['builders'],
        aud: 'asserted-api',
      });
    } finally {
      await c.close();
    }
    expect(idp.exchanges().length).toBe(before); // no exchange: there was no caller token
    expect(everything().some((h) => h?.includes(apiKey))).toBe(false);
  });

  it('static credential: the configured secret on every request', async () => {
    const token = await userToken('erin', []);
    const c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
    try {
      expect(await whoami(c, 'fixed__whoami')).toEqual({ static: true });
    } finally {
      await c.close();
    }
    expect(fixed.received.length).toBeGreaterThan(2);
    for (const r of fixed.received) expect(r.authorization).toBe('Bearer s3cret-static');
  });

  it("a client's own Authorization header never reaches an upstream (open route)", async () => {
    const secret = 'client-secret-not-for-upstreams';
    const c = await connect(`${gw.base}/open`, { authorization: `Bearer ${secret}`, 'x-api-key': secret });
    try {
      expect(await whoami(c, 'plain__whoami')).toEqual({});
      expect(await whoami(c, 'asserted__whoami')).toMatchObject({ sub: 'anonymous', anonymous: true });
    } finally {
      await c.close();
    }
    expect(plain.received.length).toBeGreaterThan(2);
    for (const r of plain.received) expect(r.authorization).toBeUndefined();
    expect(everything().some((h) => h?.includes(secret))).toBe(false);
  });
});

describe('token exchange with the IdP down', () => {
  it('the call fails with a JSON-RPC error naming the upstream; the upstream receives nothing', async () => {
    const idp = await startIdp();
    const client = idp.registerClient({ authMethod: 'client_secret_post' });
    const up = await startIdentityUpstream({
      check: { kind: 'jwt', jwksUri: idp.jwksUri, issuer: idp.issuer, audience: EXCHANGED_AUD },
    });
    const gw = await startGateway(`
public_url: ${PUBLIC_URL}
upstreams:
  files:
    type: streamable-http
    url: "${up.url}"
    auth:
      token_exchange:
        client_id: "${client.clientId}"
        client_secret: "${client.clientSecret}"
        audience: "${EXCHANGED_AUD}"
        resource: "${EXCHANGED_AUD}"
routes:
  - path: /mcp
    upstreams: [files]
    auth: { oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" } }
health: { interval: 0 }
`);
    let c: Client | undefined;
    try {
      const token = await idp.token({ sub: 'frank', resource: ROUTE_AUD });
      c = await connect(`${gw.base}/mcp`, { authorization: `Bearer ${token}` });
      expect((await c.listTools()).tools.map((t) => t.name)).toEqual(['whoami']); // via client_credentials
      const seen = up.received.length;
      await idp.close();
      const err = await c.callTool({ name: 'whoami', arguments: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(McpError);
      expect((err as McpError).code).toBe(-32001);
      expect((err as McpError).message).toMatch(
        /upstream "files" was not called: the identity provider could not be reached for the token exchange/,
      );
      expect(up.received.length).toBe(seen); // never sent without a credential
    } finally {
      await c?.close();
      await gw.close();
      await up.close();
      await idp.close().catch(() => {});
    }
  });
});

describe('the signing key and config errors', () => {
  it('signs with the key file given (RSA → RS256); iss defaults to "gatehouse", aud to the upstream name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-identity-key-'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const jwks = Promise.withResolvers<string>();
    const up = await startIdentityUpstream({
      check: { kind: 'jwt', jwksUri: jwks.promise, issuer: 'gatehouse', audience: 'keyed' },
    });
    const gw = await startGateway(`
identity: { signing_key: "${join(dir, 'signing.pem')}" }
upstreams:
  keyed: { type: streamable-http, url: "${up.url}", auth: { assertion: {} } }
routes:
  - path: /mcp
    upstreams: [keyed]
health: { interval: 0 }
`);
    jwks.resolve(`${gw.base}/.well-known/jwks.json`);
    const c = await connect(`${gw.base}/mcp`);
    try {
      const { keys } = (await (await fetch(`${gw.base}/.well-known/jwks.json`)).json()) as {
        keys: Record<string, unknown>[];
      };
      const expectedKid = await calculateJwkThumbprint(publicKey.export({ format: 'jwk' }) as JWK);
      expect(keys).toEqual([expect.objectContaining({ kty: 'RSA', alg: 'RS256', kid: expectedKid })]);
      expect(await whoami(c, 'whoami')).toMatchObject({ iss: 'gatehouse', aud: 'keyed', sub: 'anonymous' });
    } finally {
      await c.close();
      await gw.close();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a signing key that is not EC P-256 or RSA, naming identity.signing_key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-identity-key-'));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    writeFileSync(join(dir, 'p384.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    try {
      await expect(
        startGateway(`
identity: { signing_key: "${join(dir, 'p384.pem')}" }
upstreams:
  up: { type: streamable-http, url: "http://127.0.0.1:9/mcp", auth: { assertion: {} } }
routes:
  - path: /mcp
    upstreams: [up]
health: { interval: 0 }
`),
      ).rejects.toThrow(/identity\.signing_key: the signing key is EC secp384r1; use EC P-256/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('token exchange without token_endpoint needs exactly one OAuth issuer on its routes', async () => {
    const upstream = (extra: string) => `
upstreams:
  files:
    type: streamable-http
    url: "http://127.0.0.1:9/mcp"
    auth: { token_exchange: { client_id: gw, client_secret: s, audience: files${extra} } }
`;
    await expect(
      startGateway(`${upstream('')}
routes:
  - path: /mcp
    upstreams: [files]
`),
    ).rejects.toThrow(/upstreams\.files\.auth\.token_exchange\.token_endpoint: set token_endpoint: no route/);
    await expect(
      startGateway(`${upstream('')}
routes:
  - path: /a
    upstreams: [files]
    auth: { oauth: { issuer: "https://one.example", jwks_uri: "https://one.example/jwks", audience: a } }
  - path: /b
    upstreams: [files]
    auth: { oauth: { issuer: "https://two.example", jwks_uri: "https://two.example/jwks", audience: b } }
`),
    ).rejects.toThrow(/different issuers \(https:\/\/one\.example, https:\/\/two\.example\)/);
    await expect(
      startGateway(`${upstream(', token_endpoint: "http://idp.example/token"')}
routes:
  - path: /mcp
    upstreams: [files]
`),
    ).rejects.toThrow(/token_endpoint: http:\/\/idp\.example\/token is not https/);
  });
});
