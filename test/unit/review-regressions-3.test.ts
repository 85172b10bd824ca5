// Regressions of the third review (identity, authz, REST, Kong import) that need no running gateway: each
// failed before its fix. The end-to-end ones are in test/e2e/review-regressions-3.test.ts.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { globMatcher } from '../../src/catalog/filter.ts';
import { parseConfig } from '../../src/config/load.ts';
import { importKong } from '../../src/kong/import.ts';
import { AclPolicy, aclCaller, canonicalUri } from '../../src/policy/acl.ts';
import { loadOpenApi, sanitizeName } from '../../src/upstream/rest/openapi.ts';
import { buildRequest, compileRestTool, RestToolError } from '../../src/upstream/rest/tools.ts';

describe('third review: ACL', () => {
  it('a subject whose value reads as a typed entry does not match that entry', () => {
    const p = new AclPolicy({ default: { allow: ['group:admins', 'agent:deployer'] } });
    // An OAuth user whose sub (or an API key whose name) is "group:admins" is not in group admins.
    expect(p.decide(aclCaller({ user: 'group:admins', groups: [] }), 'tool', 'u', 't').allow).toBe(false);
    expect(
      p.decide(aclCaller({ user: 'x', groups: ['agent:deployer'] }), 'tool', 'u', 't').allow,
      'a group named like an agent entry',
    ).toBe(false);
    expect(p.decide(aclCaller({ user: 'x', groups: ['admins'] }), 'tool', 'u', 't').allow).toBe(true);
    // Typed entries of the value's own kind still match it, and a bare name still matches any kind.
    const typed = new AclPolicy({ default: { allow: ['user:group:admins', 'ops'] } });
    expect(typed.decide(aclCaller({ user: 'group:admins', groups: [] }), 'tool', 'u', 't').allow).toBe(true);
    expect(typed.decide(aclCaller({ user: 'ops', groups: [] }), 'tool', 'u', 't').allow).toBe(true);
  });

  it('a resource URI is also judged in canonical form: dot segments and encodings cannot dodge a rule', () => {
    const p = new AclPolicy({
      default: { allow: ['staff'] },
      resources: {
        'docs:file:///private/*': { deny: ['contractors'] },
        'docs:file:///My%20Docs/*': { allow: ['writers'] },
      },
    });
    const contractor = aclCaller({ user: 'c', groups: ['staff', 'contractors'] });
    for (const uri of [
      'file:///public/../private/pay.csv',
      'file:///public/..%2Fprivate%2Fpay.csv',
      'file:///public/%2e%2e/private/pay.csv',
      'file:///public/%252e%252e/private/pay.csv',
      'file:///public\\..\\private\\pay.csv',
      'FILE:///private/pay.csv',
      'file:////private/pay.csv',
      'file:///./private/pay.csv',
    ]) {
      expect(p.decide(contractor, 'resource', 'docs', uri).allow, uri).toBe(false);
      expect(p.lists(contractor, 'resource', 'docs', uri, false), uri).toBe(false);
    }
    expect(p.decide(contractor, 'resource', 'docs', 'file:///public/a.md').allow).toBe(true);
    // An allow rule written with percent-encoding still allows its encoded URIs.
    const writer = aclCaller({ user: 'w', groups: ['writers'] });
    expect(p.decide(writer, 'resource', 'docs', 'file:///My%20Docs/a.md').allow).toBe(true);
    expect(p.decide(writer, 'resource', 'docs', 'file:///My%20Docs/../../etc/passwd').allow).toBe(false);
    expect(canonicalUri('test://Static/resource/{id}?q=../x')).toBe('test://static/resource/{id}?q=../x');
  });

  it('globs match in linear time: a long client URI cannot hold the event loop', () => {
    expect(globMatcher('fs:*/x*/y*/z')('fs:/a/x/b/y/c/z')).toBe(true);
    expect(globMatcher('a?c*')('abcdef')).toBe(true);
    expect(globMatcher('a?c*')('ac')).toBe(false);
    expect(globMatcher('*')('')).toBe(true);
    expect(globMatcher('x')('x')).toBe(true);
    const p = new AclPolicy({
      default: { allow: ['staff'] },
      resources: { 'fs:*/x*/y*/z': { deny: ['staff'] } },
    });
    // With the backtracking regex this took ~10 s (quadratic; 4 MiB bodies are accepted): the test timed out.
    const uri = `file://${'/x'.repeat(200_000)}`;
    expect(p.decide(aclCaller({ user: 's', groups: ['staff'] }), 'resource', 'fs', uri).allow).toBe(true);
  });
});

describe('third review: REST requests', () => {
  const get = compileRestTool({
    name: 'get-order',
    method: 'GET',
    path: '/orders/{id}',
    parameters: [{ name: 'id', in: 'path' }],
  });

  it('a path argument holding a dot segment in any spelling is refused', () => {
    for (const id of ['../admin', 'a/../../b', '..\\admin', '%2e%2e%2fadmin', '%252e%252e', '..;x', './x']) {
      expect(() => buildRequest(get, { id }, ''), id).toThrow(RestToolError);
    }
    expect(buildRequest(get, { id: 'a/b' }, '').path).toBe('/orders/a%2Fb');
    expect(buildRequest(get, { id: '...' }, '').path).toBe('/orders/...');
    expect(buildRequest(get, { id: 'v1.2..3' }, '').path).toBe('/orders/v1.2..3');
  });

  it('header values an HTTP header cannot carry are refused as an argument error', () => {
    const t = compileRestTool({
      name: 'h',
      method: 'GET',
      path: '/h',
      parameters: [{ name: 'X-A', in: 'header' }],
    });
    expect(() => buildRequest(t, { 'X-A': 'a\u0000b' }, '')).toThrow(/cannot carry/);
    expect(() => buildRequest(t, { 'X-A': 'arrow →' }, '')).toThrow(/cannot carry/);
    expect(buildRequest(t, { 'X-A': 'café' }, '').headers['x-a']).toBe('café');
  });

  it('an argument cannot set a query parameter the gateway sets', () => {
    const t = compileRestTool({
      name: 's',
      method: 'GET',
      path: '/s',
      parameters: [
        { name: 'tenant', in: 'query' },
        { name: 'filter', in: 'query', schema: { type: 'object' } },
      ],
    });
    const reserved = new Set(['tenant']);
    expect(() => buildRequest(t, { tenant: 'other' }, '', reserved)).toThrow(/query parameter "tenant"/);
    expect(() => buildRequest(t, { filter: { tenant: 'other' } }, '', reserved)).toThrow(/"tenant"/);
    expect(buildRequest(t, { filter: { status: 'open' } }, '', reserved).path).toBe('/s?status=open');
  });

  it('an invalid argument under a key with "%" is described, not thrown as URIError', () => {
    const t = compileRestTool({
      name: 'x',
      method: 'POST',
      path: '/x',
      request_body: {
        content: {
          'application/json': {
            schema: {
              type: 'object',
              properties: { m: { type: 'object', additionalProperties: { type: 'integer' } } },
            },
          },
        },
      },
    });
    expect(t.check({ m: { '%': 'x' } })).toBe('argument "m.%" must be integer');
    expect(t.check({ m: { 'a/b': 'x' } })).toBe('argument "m.a/b" must be integer');
  });
});

describe('third review: OpenAPI documents', () => {
  it('names are sanitised in linear time, with the same result as before', () => {
    expect(sanitizeName('get /orders/{id}')).toBe('get_orders_id');
    expect(sanitizeName('a__%%__b')).toBe('a_b');
    expect(sanitizeName('a%_%b')).toBe('a__b');
    expect(sanitizeName('__x__')).toBe('x');
    expect(sanitizeName('%%%')).toBe('operation');
    // The regex took ~2 s on 200k underscores (quadratic); the test timed out.
    expect(sanitizeName(`${'_'.repeat(400_000)}a`)).toBe('a');
  });

  it('a document served from a URL is read up to a bound, not for ever', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/yaml' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const more = () => {
        while (res.write(chunk)) if (res.destroyed) return;
        res.once('drain', more);
      };
      res.on('error', () => {});
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      await expect(loadOpenApi(`http://127.0.0.1:${port}/openapi.yaml`, '.')).rejects.toThrow(
        /larger than 32 MiB/,
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('third review: Kong import', () => {
  const deck = (extra: string) => `
services:
  - name: orders
    url: \${{ env "DECK_API" }}/orders
    routes:
      - name: r
        paths: [/orders-mcp]
        plugins:
          - name: ai-mcp-proxy
            config:
              mode: conversion-listener
              tools:
                - name: list-orders
                  description: "Lists orders. \${DB_PASSWORD} costs $5"
                  method: GET
                  path: /orders
${extra}`;

  it('a `$` of the decK file stays literal: importing cannot make the gateway read its environment', () => {
    const { config, report } = importKong(deck(''), { DECK_API: 'http://api.example:8080' });
    expect(report.errors).toEqual([]);
    const parsed = parseConfig(stringify(config), 'imported.yaml', { DB_PASSWORD: 'hunter2' });
    const up = parsed.upstreams.orders as { base_url?: string; tools: { description?: string }[] };
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text is the point
    expect(up.tools[0]!.description).toBe('Lists orders. ${DB_PASSWORD} costs $5');
    expect(up.base_url).toBe('http://api.example:8080/orders');
  });

  it('a global ai-mcp-oauth2 plugin protects the imported route (not imported as an open route)', () => {
    const { config, report } = importKong(
      deck(`plugins:
  - name: ai-mcp-oauth2
    config:
      authorization_servers: [https://idp.example]
      client_id: gw
      client_secret: \${{ env "DECK_SECRET" }}
      introspection_endpoint: https://idp.example/introspect`),
      { DECK_API: 'http://api.example', DECK_SECRET: 's3cr3t-value' },
    );
    expect(report.errors).toEqual([]);
    const route = (config.routes as Record<string, unknown>[])[0]!;
    expect(route.auth).toMatchObject({ oauth: { issuer: 'https://idp.example' } });
    expect(report.warnings.join('\n')).not.toContain('served without authentication');
    // The secret is referenced from the environment, never written into the output file.
    expect(stringify(config)).not.toContain('s3cr3t-value');
    expect(route.auth).toMatchObject({
      oauth: { introspection: { client_secret: { env: 'DECK_SECRET' } } },
    });
  });

  it("a route's own ai-mcp-oauth2 wins over its service's (Kong's precedence)", () => {
    const { config } = importKong(
      `
services:
  - name: s
    url: http://api.example
    plugins:
      - { name: ai-mcp-oauth2, config: { authorization_servers: [https://service-idp.example] } }
    routes:
      - name: r
        paths: [/mcp]
        plugins:
          - { name: ai-mcp-proxy, config: { mode: passthrough-listener } }
          - { name: ai-mcp-oauth2, config: { authorization_servers: [https://route-idp.example] } }
`,
      {},
    );
    const route = (config.routes as Record<string, unknown>[])[0]!;
    expect(route.auth).toMatchObject({ oauth: { issuer: 'https://route-idp.example' } });
  });
});
