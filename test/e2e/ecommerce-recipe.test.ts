// The Kong recipe of REQUIREMENTS.md, runnable: examples/ecommerce/gatehouse.yaml as shipped, in front of
// the example's shop API (three REST APIs, 8 tools), behind a real OIDC provider. Each persona's
// tools/list is exactly its column; permitted calls reach the API and return its data; forbidden ones
// are refused before the API sees anything; no token gets the recipe's 401.

import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShopApi } from '../../examples/ecommerce/shop-api.ts';
import { type Idp, startIdp } from '../fixtures/idp.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const PUBLIC = 'https://gw.example.test';
const RESOURCE = `${PUBLIC}/ecommerce-mcp`;

/** Tool → [warehouse-ops, customer-support], and arguments for a call that succeeds. */
const MATRIX: Record<string, { warehouse: boolean; support: boolean; args: Record<string, unknown> }> = {
  'list-orders': { warehouse: true, support: true, args: { status: 'pending' } },
  'get-order': { warehouse: true, support: true, args: { orderId: 'O-5001' } },
  'cancel-order': { warehouse: false, support: true, args: { orderId: 'O-5003' } },
  'list-inventory': { warehouse: true, support: true, args: { low_stock: true } },
  'check-inventory': { warehouse: true, support: true, args: { sku: 'KB-101' } },
  'restock-item': { warehouse: true, support: false, args: { sku: 'DK-010', quantity: 5 } },
  'get-customer': { warehouse: false, support: true, args: { customerId: 'C-1001' } },
  'update-customer-contact': {
    warehouse: false,
    support: true,
    args: { customerId: 'C-1002', phone: '+31 10 555 0100' },
  },
};

describe('the Kong recipe (examples/ecommerce) end to end', () => {
  let idp: Idp;
  let shop: Awaited<ReturnType<typeof startShopApi>>;
  let gw: RunningGateway;
  const seen: string[] = [];

  beforeAll(async () => {
    idp = await startIdp();
    shop = await startShopApi();
    shop.server.on('request', (req) => seen.push(`${req.method} ${req.url}`));
    const yaml = readFileSync(new URL('../../examples/ecommerce/gatehouse.yaml', import.meta.url), 'utf8');
    gw = await startGateway(yaml, { IDP_ISSUER: idp.issuer, SHOP_API: shop.url, PUBLIC_URL: PUBLIC });
  });
  afterAll(async () => {
    await gw?.close();
    await shop?.close();
    await idp?.close().catch(() => {});
  });

  async function connect(groups: string[]): Promise<Client> {
    const token = await idp.token({ sub: `user-${groups.join('-')}`, groups, resource: RESOURCE });
    const c = new Client({ name: 'recipe', version: '1' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(`${gw.base}/ecommerce-mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    return c;
  }

  it('no token: 401 pointing at the resource metadata, which names the IdP', async () => {
    const r = await fetch(`${gw.base}/ecommerce-mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain(
      `resource_metadata="${PUBLIC}/.well-known/oauth-protected-resource/ecommerce-mcp"`,
    );
    const doc = (await (
      await fetch(`${gw.base}/.well-known/oauth-protected-resource/ecommerce-mcp`)
    ).json()) as {
      authorization_servers: string[];
    };
    expect(doc.authorization_servers).toEqual([idp.issuer]);
  });

  for (const who of ['warehouse', 'support'] as const) {
    it(`${who}: its column exactly; permitted calls return the API's data; forbidden ones never reach it`, async () => {
      const c = await connect([who === 'warehouse' ? 'warehouse-ops' : 'customer-support']);
      try {
        const allowed = Object.keys(MATRIX).filter((t) => MATRIX[t]![who]);
        expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual([...allowed].sort());
        for (const [tool, row] of Object.entries(MATRIX)) {
          const before = seen.length;
          const outcome = await c.callTool({ name: tool, arguments: row.args }).then(
            (r) => r as { isError?: boolean; content: { text: string }[] },
            (e: unknown) => e as McpError,
          );
          if (row[who]) {
            expect(outcome, tool).not.toBeInstanceOf(McpError);
            const r = outcome as { isError?: boolean; content: { text: string }[] };
            expect(r.isError, `${tool}: ${r.content[0]?.text}`).toBeFalsy();
            expect(seen.length, tool).toBe(before + 1);
          } else {
            expect(outcome, tool).toBeInstanceOf(McpError);
            expect((outcome as McpError).message).toContain(`Unknown tool: ${tool}`);
            expect(seen.length, `${tool} must not reach the API`).toBe(before);
          }
        }
      } finally {
        await c.close();
      }
    });
  }

  it('the data is real: a restock changes the stock; an API refusal is an isError result', async () => {
    const c = await connect(['warehouse-ops']);
    try {
      const before = JSON.parse(
        (
          (await c.callTool({ name: 'check-inventory', arguments: { sku: 'MS-220' } })).content as {
            text: string;
          }[]
        )[0]!.text,
      ) as { quantity: number };
      await c.callTool({ name: 'restock-item', arguments: { sku: 'MS-220', quantity: 10 } });
      const after = JSON.parse(
        (
          (await c.callTool({ name: 'check-inventory', arguments: { sku: 'MS-220' } })).content as {
            text: string;
          }[]
        )[0]!.text,
      ) as { quantity: number };
      expect(after.quantity).toBe(before.quantity + 10);
      const missing = (await c.callTool({ name: 'get-order', arguments: { orderId: 'O-404' } })) as {
        isError?: boolean;
        content: { text: string }[];
      };
      expect(missing.isError).toBe(true);
      expect(missing.content[0]!.text).toContain('HTTP 404 from orders');
    } finally {
      await c.close();
    }
  });

  it('a token whose groups match no configured group is refused (fail closed)', async () => {
    await expect(connect(['marketing'])).rejects.toThrow();
  });
});
