import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Idp, startIdp } from '../fixtures/idp.ts';

describe('test IdP fixture (oidc-provider)', () => {
  let idp: Idp;
  const resource = 'http://127.0.0.1:9/mcp';

  beforeAll(async () => {
    idp = await startIdp();
  });
  afterAll(async () => {
    await idp.close();
  });

  it('mints RS256 JWT access tokens verifiable against its JWKS', async () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const token = await idp.token({ sub: 'alice', groups: ['ops'], resource });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: resource });
    expect(payload.sub).toBe('alice');
    expect(payload.groups).toEqual(['ops']);
    expect(payload.aud).toBe(resource);
    expect(payload.scope).toBe('mcp');
    const now = Math.floor(Date.now() / 1000);
    expect(payload.exp).toBeGreaterThan(now + 500);
    expect(payload.exp).toBeLessThanOrEqual(now + 601);
  });

  it('honours scope, expiresIn (even negative) and concurrent requests', async () => {
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const [a, b] = await Promise.all([
      idp.token({ sub: 'bob', resource, scope: 'mcp tools:read', expiresIn: 30 }),
      idp.token({ sub: 'carol', groups: ['a', 'b'], resource: 'http://127.0.0.1:9/other' }),
    ]);
    const pa = (await jwtVerify(a, jwks, { issuer: idp.issuer, audience: resource })).payload;
    expect(pa.sub).toBe('bob');
    expect(pa.groups).toEqual([]);
    expect(pa.scope).toBe('mcp tools:read');
    expect(pa.exp! - pa.iat!).toBe(30);
    const pb = (await jwtVerify(b, jwks, { issuer: idp.issuer, audience: 'http://127.0.0.1:9/other' }))
      .payload;
    expect(pb.sub).toBe('carol');
    expect(pb.groups).toEqual(['a', 'b']);

    const expired = await idp.token({ sub: 'dave', resource, expiresIn: -60 });
    await expect(jwtVerify(expired, jwks, { issuer: idp.issuer, audience: resource })).rejects.toBeInstanceOf(
      errors.JWTExpired,
    );
  });

  it('mints opaque tokens answered by introspection (with claims), and revokes them', async () => {
    const token = await idp.token({
      sub: 'olga',
      groups: ['ops'],
      resource,
      format: 'opaque',
      claims: { tid: 'acme', org: { dept: ['eng', 'sre'] } },
    });
    expect(token.split('.')).toHaveLength(1);
    const introspect = async (t: string) => {
      const { clientId, clientSecret } = idp.introspectionClient;
      const res = await fetch(idp.introspectionEndpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: t }).toString(),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const before = idp.introspections();
    const answer = await introspect(token);
    expect(answer).toMatchObject({
      active: true,
      iss: idp.issuer,
      aud: resource,
      sub: 'olga',
      groups: ['ops'],
      scope: 'mcp',
      tid: 'acme',
      org: { dept: ['eng', 'sre'] },
    });
    expect(answer.exp as number).toBeGreaterThan(Date.now() / 1000 + 500);
    expect(idp.introspections()).toBe(before + 1);
    await idp.revoke(token);
    expect(await introspect(token)).toEqual({ active: false });
    expect(await introspect('not-a-token-the-idp-knows')).toEqual({ active: false });
    expect(idp.introspections()).toBe(before + 3);
  });

  it('JWTs carry extra claims; signJwt signs any header with the key in its JWKS', async () => {
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const token = await idp.token({ sub: 'pat', resource, claims: { tid: 't1' } });
    expect((await jwtVerify(token, jwks, { issuer: idp.issuer, audience: resource })).payload.tid).toBe('t1');
    const idToken = await idp.signJwt(
      { iss: idp.issuer, sub: 'pat', aud: resource },
      { typ: 'id_token+jwt' },
    );
    expect(decodeProtectedHeader(idToken).typ).toBe('id_token+jwt');
    expect((await jwtVerify(idToken, jwks, { issuer: idp.issuer, audience: resource })).payload.sub).toBe(
      'pat',
    );
  });

  it('supports a custom groups claim name', async () => {
    const other = await startIdp({ groupsClaim: 'roles' });
    try {
      const token = await other.token({ sub: 'erin', groups: ['admin'], resource });
      const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(other.jwksUri)), {
        issuer: other.issuer,
        audience: resource,
      });
      expect(payload.roles).toEqual(['admin']);
      expect(payload.groups).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});
