// Access control beyond tools, end to end with the official SDK client and a real IdP (oidc-provider):
// prompt and resource ACLs (lists filtered per caller; reads, gets, subscriptions and completions refused
// before any upstream is contacted), ACLs on an upstream's own tool entries, OAuth scope rules with the
// 2025-11-25 step-up challenge (403 insufficient_scope), and the Kong recipe matrix with OAuth personas.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { RECIPE_MATRIX, RECIPE_TOOLS } from '../helpers/recipe.ts';

const PUBLIC = 'https://gw.example.test';

const MATRIX = RECIPE_MATRIX;
const TOOLS = RECIPE_TOOLS;

describe('ACLs for prompts, resources, tool entries and scopes', () => {
  let idp: Idp;
  let shop: FixtureHandle;
  let docs: FixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startFixture({ name: 'shop', tools: TOOLS });
    docs = await startFixture({
      name: 'docs',
      tools: ['search', 'purge'],
      prompts: ['summarise', 'draft-contract'],
      resources: ['file:///public/readme.md', 'file:///private/salaries.csv'],
      templates: ['file:///public/{name}', 'file:///private/{name}'],
    });
    gw = await startGateway(`
public_url: ${PUBLIC}
upstreams:
  shop:
    type: streamable-http
    url: "${shop.url}"
    tools:
      overrides:
        cancel-order: { acl: { allow: [customer-support] } }
        restock-item: { acl: { allow: [warehouse-ops] } }
        get-customer: { acl: { allow: [customer-support] } }
        update-customer-contact: { acl: { allow: [customer-support] } }
  docs:
    type: streamable-http
    url: "${docs.url}"
    tools:
      overrides:
        purge: { acl: { allow: [warehouse-ops] } }
routes:
  - path: /ecommerce-mcp
    upstreams: [shop]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
    acl:
      default: { allow: [warehouse-ops, customer-support] }
  - path: /docs
    upstreams: [docs]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", scopes: [mcp, docs:admin] }
    acl:
      default: { allow: [staff] }
      tools:
        "docs:purge": { allow: [staff], scopes: [docs:admin] }
      prompts:
        "docs:draft-*": { allow: [legal] }
      resources:
        "docs:file:///private/*": { allow: [hr] }
      deny_response: step_up
  - path: /docs-hidden
    upstreams: [docs]
    auth:
      oauth: { issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}" }
    acl:
      default: { allow: [staff] }
      tools:
        "docs:purge": { allow: [staff], scopes: [docs:admin] }
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await docs?.close();
    await idp?.close().catch(() => {});
  });

  async function token(route: string, sub: string, groups: string[], scope = 'mcp'): Promise<string> {
    return idp.token({ sub, groups, resource: `${PUBLIC}${route}`, scope });
  }

  async function connect(route: string, bearer: string): Promise<Client> {
    const c = new Client({ name: 'acl-kinds', version: '1' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(`${gw.base}${route}`), {
        requestInit: { headers: { authorization: `Bearer ${bearer}` } },
      }),
    );
    return c;
  }

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e as McpError,
    );

  for (const who of ['warehouse', 'support'] as const) {
    it(`Kong recipe with OAuth, ${who}: its column exactly; forbidden calls never reach the upstream`, async () => {
      const group = who === 'warehouse' ? 'warehouse-ops' : 'customer-support';
      const c = await connect('/ecommerce-mcp', await token('/ecommerce-mcp', `${who}-user`, [group]));
      try {
        const allowed = TOOLS.filter((t) => MATRIX[t]![who]);
        expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual([...allowed].sort());
        const before = (await shop.state()).calls.length;
        for (const tool of TOOLS) {
          const outcome = await refusal(c.callTool({ name: tool, arguments: {} }));
          if (MATRIX[tool]![who]) expect(outcome, tool).toBeUndefined();
          else {
            expect(outcome, tool).toBeInstanceOf(McpError);
            expect(outcome!.code).toBe(-32602);
            expect(outcome!.message).toContain(`Unknown tool: ${tool}`);
          }
        }
        const calls = (await shop.state()).calls.slice(before).map((x) => x.tool);
        expect(calls.sort()).toEqual([...allowed].sort());
      } finally {
        await c.close();
      }
    });
  }

  it('prompt ACLs: lists filtered, gets and completions of hidden prompts look unknown', async () => {
    const staff = await connect('/docs', await token('/docs', 'sam', ['staff']));
    const lawyer = await connect('/docs', await token('/docs', 'lee', ['staff', 'legal']));
    try {
      expect((await staff.listPrompts()).prompts.map((p) => p.name)).toEqual(['summarise']);
      expect((await lawyer.listPrompts()).prompts.map((p) => p.name).sort()).toEqual([
        'draft-contract',
        'summarise',
      ]);
      const e = await refusal(staff.getPrompt({ name: 'draft-contract' }));
      expect(e?.code).toBe(-32602);
      expect(e?.message).toContain('Unknown prompt: draft-contract');
      const unknown = await refusal(staff.getPrompt({ name: 'no-such-prompt' }));
      expect(e?.message.replace('draft-contract', 'X')).toBe(unknown?.message.replace('no-such-prompt', 'X'));
      const c = await refusal(
        staff.complete({
          ref: { type: 'ref/prompt', name: 'draft-contract' },
          argument: { name: 'a', value: 'b' },
        }),
      );
      expect(c?.code).toBe(-32602);
      expect(c?.message).toContain('Unknown prompt: draft-contract');
      expect((await lawyer.getPrompt({ name: 'draft-contract' })).messages.length).toBeGreaterThan(0);
    } finally {
      await staff.close();
      await lawyer.close();
    }
  });

  it('resource ACLs: resources and templates filtered; reads of hidden URIs never reach the upstream', async () => {
    const staff = await connect('/docs', await token('/docs', 'sam', ['staff']));
    const hr = await connect('/docs', await token('/docs', 'hana', ['staff', 'hr']));
    try {
      expect((await staff.listResources()).resources.map((r) => r.uri)).toEqual(['file:///public/readme.md']);
      expect((await staff.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)).toEqual([
        'file:///public/{name}',
      ]);
      expect((await hr.listResources()).resources.map((r) => r.uri).sort()).toEqual([
        'file:///private/salaries.csv',
        'file:///public/readme.md',
      ]);
      const before = (await docs.state()).reads.length;
      for (const uri of ['file:///private/salaries.csv', 'file:///private/other.csv']) {
        const e = await refusal(staff.readResource({ uri }));
        expect(e?.code, uri).toBe(-32602);
        expect(e?.message).toContain(`Unknown resource: ${uri}`);
      }
      expect(await refusal(staff.subscribeResource({ uri: 'file:///private/salaries.csv' }))).toBeInstanceOf(
        McpError,
      );
      expect((await docs.state()).reads.slice(before)).toEqual([]);
      const ok = await staff.readResource({ uri: 'file:///public/x.md' });
      expect(JSON.stringify(ok.contents)).toContain('docs:file:///public/x.md');
      const read = await hr.readResource({ uri: 'file:///private/salaries.csv' });
      expect(JSON.stringify(read.contents)).toContain('salaries.csv');
    } finally {
      await staff.close();
      await hr.close();
    }
  });

  it("a route-wide rule wins over the upstream's own tool entry ACL", async () => {
    const staff = await connect('/docs-hidden', await token('/docs-hidden', 'sam', ['staff']));
    try {
      // docs:purge has a route-wide rule on /docs-hidden (which wins over the entry): staff + docs:admin.
      const names = (await staff.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(['search']);
    } finally {
      await staff.close();
    }
  });

  it('step_up: a caller lacking only a scope sees the tool, and its call gets 403 insufficient_scope', async () => {
    const bearer = await token('/docs', 'sam', ['staff']);
    const staff = await connect('/docs', bearer);
    const sid = (staff.transport as StreamableHTTPClientTransport).sessionId!;
    try {
      expect((await staff.listTools()).tools.map((t) => t.name).sort()).toEqual(['purge', 'search']);
      const before = (await docs.state()).calls.length;
      const r = await fetch(`${gw.base}/docs`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${bearer}`,
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 7,
          method: 'tools/call',
          params: { name: 'purge', arguments: {} },
        }),
      });
      expect(r.status).toBe(403);
      const challenge = r.headers.get('www-authenticate')!;
      expect(challenge).toMatch(/^Bearer error="insufficient_scope"/);
      expect(challenge).toContain('scope="mcp docs:admin"');
      expect(challenge).toContain(`resource_metadata="${PUBLIC}/.well-known/oauth-protected-resource/docs"`);
      const body = (await r.json()) as { id: number; error: { code: number; message: string } };
      expect(body.id).toBe(7);
      expect(body.error.message).toContain('docs:admin');
      expect((await docs.state()).calls.length).toBe(before);

      // The client steps up: a token with the scope, presented in the same session, gets through.
      const stepped = await token('/docs', 'sam', ['staff'], 'mcp docs:admin');
      const retry = await fetch(`${gw.base}/docs`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${stepped}`,
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 8,
          method: 'tools/call',
          params: { name: 'purge', arguments: {} },
        }),
      });
      expect(retry.status).toBe(200);
      expect(await retry.text()).toContain('docs:purge');
      expect((await docs.state()).calls.length).toBe(before + 1);

      // With the scope from the start, the same caller gets through.
      const admin = await connect('/docs', await token('/docs', 'sam', ['staff'], 'mcp docs:admin'));
      try {
        const res = await admin.callTool({ name: 'purge', arguments: {} });
        expect(JSON.stringify(res.content)).toContain('docs:purge');
      } finally {
        await admin.close();
      }
    } finally {
      await staff.close();
    }
  });

  it('step_up never answers a subject denial: a caller not allowed by the rule sees an unknown tool', async () => {
    // In legal only: the route lets it in (legal is named by a prompt rule) but purge allows staff only.
    const lawyer = await connect('/docs', await token('/docs', 'lou', ['legal'], 'mcp docs:admin'));
    try {
      expect((await lawyer.listTools()).tools).toEqual([]);
      const e = await refusal(lawyer.callTool({ name: 'purge', arguments: {} }));
      expect(e?.code).toBe(-32602);
      expect(e?.message).toContain('Unknown tool: purge');
    } finally {
      await lawyer.close();
    }
  });

  it('hide (the default): a scope denial is indistinguishable from an unknown tool', async () => {
    const staff = await connect('/docs-hidden', await token('/docs-hidden', 'sam', ['staff']));
    try {
      const e = await refusal(staff.callTool({ name: 'purge', arguments: {} }));
      expect(e?.code).toBe(-32602);
      expect(e?.message).toContain('Unknown tool: purge');
    } finally {
      await staff.close();
    }
  });
});
