// `gatehouse import kong`: the recipe's decK file (examples/kong/ecommerce.deck.yaml: three conversion-only
// services tagged ecom-mcp, one listener, ai-mcp-oauth2 with introspection) imported, then run: the ACL
// matrix holds end to end with opaque tokens introspected at a real IdP, and the report names what was
// not mapped. The other modes and the report's edge cases are checked on small decK files.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShopApi } from '../../examples/ecommerce/shop-api.ts';
import { importKongCommand } from '../../src/cli/import.ts';
import { importKong } from '../../src/kong/import.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const RESOURCE = 'https://gw.example.test/ecommerce-mcp';
const COLUMNS: Record<string, string[]> = {
  'warehouse-ops': ['check-inventory', 'get-order', 'list-inventory', 'list-orders', 'restock-item'],
  'customer-support': [
    'cancel-order',
    'check-inventory',
    'get-customer',
    'get-order',
    'list-inventory',
    'list-orders',
    'update-customer-contact',
  ],
};

describe('gatehouse import kong: the recipe', () => {
  let idp: Idp;
  let shop: Awaited<ReturnType<typeof startShopApi>>;
  let gw: RunningGateway;
  let dir: string;
  const stderr: string[] = [];
  let code: number;

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startShopApi();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-kong-'));
    const env = {
      DECK_SHOP_API: shop.url,
      DECK_MCP_RESOURCE: RESOURCE,
      DECK_IDP_ISSUER: idp.issuer,
      DECK_IDP_INTROSPECTION: idp.introspectionEndpoint,
      DECK_CLIENT_ID: idp.introspectionClient.clientId,
    };
    code = await importKongCommand(
      'examples/kong/ecommerce.deck.yaml',
      { output: join(dir, 'gatehouse.yaml') },
      env,
      (s) => stderr.push(s),
    );
    gw = await startGateway(readFileSync(join(dir, 'gatehouse.yaml'), 'utf8'), {
      GATEHOUSE_INTROSPECTION_SECRET: idp.introspectionClient.clientSecret,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await idp?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the config (exit 0) and reports what it could not map', () => {
    expect(code).toBe(0);
    const report = stderr.join('');
    expect(report).toContain('default_acl is IGNORED by Kong');
    expect(report).toContain(
      '{vault://env/gatehouse-introspection-secret} → { env: GATEHOUSE_INTROSPECTION_SECRET }',
    );
    expect(report).toContain('claim_to_header is not mapped');
    expect(report).toContain('config.logging is not mapped');
    expect(report).toMatch(/imported 3 upstream\(s\) and 1 route\(s\)/);
  });

  for (const [group, column] of Object.entries(COLUMNS)) {
    it(`${group}: exactly its column, Kong's tool names kept; calls reach the shop API`, async () => {
      const token = await idp.token({
        sub: `u-${group}`,
        groups: [group],
        resource: RESOURCE,
        format: 'opaque',
      });
      const c = new Client({ name: 'kong-import', version: '1' });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(`${gw.base}/ecommerce-mcp`), {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        }),
      );
      try {
        expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(column);
        const r = (await c.callTool({ name: 'get-order', arguments: { orderId: 'O-5002' } })) as {
          content: { text: string }[];
        };
        expect(JSON.parse(r.content[0]!.text)).toMatchObject({ id: 'O-5002', customerId: 'C-1002' });
        const hidden = group === 'warehouse-ops' ? 'get-customer' : 'restock-item';
        await expect(c.callTool({ name: hidden, arguments: {} })).rejects.toThrow(`Unknown tool: ${hidden}`);
      } finally {
        await c.close();
      }
    });
  }
});

describe('gatehouse import kong: modes and the report', () => {
  it('conversion-listener and passthrough-listener become their own routes; paths follow strip_path', () => {
    const { config, report } = importKong(`
_format_version: "3.0"
services:
  - name: weather
    protocol: https
    host: api.weather.example
    port: 443
    path: /v1
    routes:
      - name: w
        paths: [/weather-mcp]
        strip_path: false
        plugins:
          - name: ai-mcp-proxy
            config:
              mode: conversion-listener
              default_acl: [{ scope: tools, deny: [contractors] }]
              tools:
                - { description: Current weather, method: GET, path: /weather-mcp/current.json, host: other.example }
  - name: remote-mcp
    url: http://mcp.internal:9000/mcp
    routes:
      - name: r
        paths: [/remote]
        plugins:
          - name: ai-mcp-proxy
            config: { mode: passthrough-listener }
          - name: rate-limiting
            config: { minute: 5 }
`);
    expect(report.errors).toEqual([]);
    expect(config.upstreams).toEqual({
      weather: {
        type: 'rest',
        base_url: 'https://api.weather.example:443/v1',
        tools: [
          {
            name: 'get_weather_mcp_current_json',
            method: 'GET',
            path: '/weather-mcp/current.json',
            description: 'Current weather',
          },
        ],
      },
      'remote-mcp': { type: 'streamable-http', url: 'http://mcp.internal:9000/mcp' },
    });
    expect(config.routes).toEqual([
      {
        path: '/weather-mcp',
        upstreams: ['weather'],
        tools: { prefix: 'never' },
        acl: { default: { deny: ['contractors'] } },
      },
      { path: '/remote', upstreams: ['remote-mcp'], tools: { prefix: 'never' } },
    ]);
    const warnings = report.warnings.join('\n');
    expect(warnings).toContain('config.tools[0] has no name');
    expect(warnings).toContain('config.tools[0].host is not mapped');
    expect(warnings).toContain('plugin rate-limiting is not mapped');
    expect(warnings).toContain('served without authentication');
  });

  it('errors: not YAML, no MCP plugin, a listener whose tag no plugin carries, a non-env vault', async () => {
    expect(importKong('a: [').report.errors[0]).toMatch(/^not YAML/);
    expect(importKong('_format_version: "3.0"\nservices: []').report.errors).toEqual([
      'no ai-mcp-proxy plugin found: nothing to import',
    ]);
    const orphan = importKong(`
services:
  - name: l
    url: http://x
    routes: [{ name: l, paths: [/mcp], plugins: [{ name: ai-mcp-proxy, config: { mode: listener, server: { tag: nope } } }] }]
`);
    expect(orphan.report.errors[0]).toContain('no conversion-only plugin is tagged "nope"');
    const vault = importKong(`
services:
  - name: s
    url: http://x
    routes:
      - name: r
        paths: [/mcp]
        plugins:
          - { name: ai-mcp-proxy, config: { mode: passthrough-listener } }
          - name: ai-mcp-oauth2
            config: { authorization_servers: [https://idp.example], client_id: gw, client_secret: "{vault://aws/prod/secret}" }
`);
    expect(vault.report.warnings.join('\n')).toContain(
      'is a aws vault reference, which Gatehouse cannot read',
    );
    const stderr: string[] = [];
    expect(await importKongCommand('/nonexistent/deck.yaml', {}, {}, (s) => stderr.push(s))).toBe(1);
    expect(stderr.join('')).toContain('cannot read /nonexistent/deck.yaml: ENOENT');
  });
});
