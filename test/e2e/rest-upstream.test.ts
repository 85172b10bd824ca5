// REST APIs as MCP tools, end to end: the official SDK client → the gateway → a real HTTP API on 127.0.0.1.
// Every parameter location, JSON bodies, output schemas and structured content, API failures as isError
// results, timeouts and unreachable APIs as JSON-RPC errors, argument validation, and the guarantees that an
// argument can never change the route nor a redirect take the gateway off the API's base URL.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RestEcho, startRestEcho } from '../fixtures/rest-echo.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

type ToolResult = {
  content: {
    type: string;
    text?: string;
    data?: string;
    mimeType?: string;
    resource?: Record<string, unknown>;
  }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

describe('REST upstream (type: rest)', () => {
  let api: RestEcho;
  let gw: RunningGateway;
  let client: Client;

  beforeAll(async () => {
    api = await startRestEcho();
    gw = await startGateway(
      `
limits: { max_response_bytes: 100KiB }
upstreams:
  api:
    type: rest
    base_url: "${api.origin}/api"
    headers: { x-api-key: { env: API_KEY } }
    query: { tenant: acme }
    request_timeout: 1s
    tools:
      - name: restock-item
        description: Restock an item
        method: POST
        path: /echo/inventory/{sku}/restock
        parameters:
          - { name: sku, in: path, required: true, schema: { type: string } }
          - { name: quantity, in: query, required: true, schema: { type: integer, minimum: 1 } }
          - { name: tags, in: query, schema: { type: array, items: { type: string } } }
          - { name: X-Request-Id, in: header, schema: { type: string } }
          - { name: session, in: cookie, schema: { type: string } }
        request_body:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [note]
                properties: { note: { type: string }, sku: { type: string } }
        responses:
          "200":
            content:
              application/json:
                schema: { type: object, properties: { method: { type: string }, url: { type: string } } }
        annotations: { title: Restock, destructive_hint: false }
      - name: list
        method: GET
        path: /list
        responses:
          "200": { content: { application/json: { schema: { type: array, items: { type: object } } } } }
      - name: status
        method: GET
        path: /status/{code}
        parameters: [{ name: code, in: path, schema: { type: string } }]
      - { name: text, method: GET, path: /text }
      - name: text-typed
        method: GET
        path: /text
        responses: { "200": { content: { application/json: { schema: { type: object } } } } }
      - name: empty-typed
        method: DELETE
        path: /no-content
        responses: { "200": { content: { application/json: { schema: { type: object } } } } }
      - { name: png, method: GET, path: /png }
      - { name: pdf, method: GET, path: /pdf }
      - { name: big, method: GET, path: /big }
      - { name: not-json, method: GET, path: /not-json }
      - { name: hang, method: GET, path: /hang }
      - { name: no-content, method: DELETE, path: /no-content }
      - { name: redirect-inside, method: GET, path: /redirect-inside }
      - { name: redirect-outside, method: GET, path: /redirect-outside }
      - { name: redirect-above, method: GET, path: /redirect-above }
      - name: get-order
        method: GET
        path: /echo/orders/{orderId}
        parameters: [{ name: orderId, in: path, schema: { type: string } }]
  down:
    type: rest
    base_url: "http://127.0.0.1:9/api"
    tools: [{ name: unreachable, method: GET, path: /x }]
routes:
  - path: /mcp
    upstreams: [api, down]
health: { interval: 0 }
`,
      { API_KEY: 'k-123' },
    );
    client = new Client({ name: 'rest-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`)));
  });
  afterAll(async () => {
    await client?.close();
    await gw?.close();
    await api?.close();
  });

  const call = (name: string, args: Record<string, unknown> = {}) =>
    client.callTool({ name, arguments: args }) as Promise<ToolResult>;

  it('lists the declared tools with schemas and camelCase annotations', async () => {
    const { tools } = await client.listTools();
    const restock = tools.find((t) => t.name === 'restock-item')!;
    expect(restock.title).toBe('Restock');
    expect(restock.annotations).toEqual({ title: 'Restock', destructiveHint: false });
    expect(Object.keys(restock.inputSchema.properties ?? {})).toEqual([
      'sku',
      'quantity',
      'tags',
      'X-Request-Id',
      'session',
      'note',
      'body_sku',
    ]);
    expect(tools.find((t) => t.name === 'get-order')!.annotations).toEqual({
      readOnlyHint: true,
      idempotentHint: true,
    });
    expect(tools.find((t) => t.name === 'list')!.outputSchema).toEqual({
      type: 'object',
      properties: { result: { type: 'array', items: { type: 'object' } } },
      required: ['result'],
    });
  });

  it('every parameter location and the JSON body reach the API; static headers and query too', async () => {
    const before = api.seen.length;
    const r = await call('restock-item', {
      sku: 'SKU 1/2',
      quantity: 5,
      tags: ['a', 'b'],
      'X-Request-Id': 'req-9',
      session: 's=1',
      note: 'urgent',
      body_sku: 'other',
    });
    expect(r.isError).toBeFalsy();
    const seen = api.seen[before]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/api/echo/inventory/SKU%201%2F2/restock?quantity=5&tags=a&tags=b&tenant=acme');
    expect(seen.headers['x-request-id']).toBe('req-9');
    expect(seen.headers.cookie).toBe('session=s%3D1');
    expect(seen.headers['x-api-key']).toBe('k-123');
    expect(seen.headers['content-type']).toBe('application/json');
    expect(JSON.parse(seen.body)).toEqual({ note: 'urgent', sku: 'other' });
    // The output schema makes the parsed body structured content.
    expect(r.structuredContent).toMatchObject({ method: 'POST' });
    expect(JSON.parse(r.content[0]!.text!)).toMatchObject({ method: 'POST' });
  });

  it('a non-object result is wrapped as { result } to match its output schema', async () => {
    const r = await call('list');
    expect(r.structuredContent).toEqual({ result: [{ id: 1 }, { id: 2 }] });
  });

  it('invalid arguments: an isError result naming the argument; the API is not called', async () => {
    const before = api.seen.length;
    const missing = await call('restock-item', { sku: 'a', note: 'n' });
    expect(missing.isError).toBe(true);
    expect(missing.content[0]!.text).toBe(
      'Invalid arguments for tool restock-item: missing required argument "quantity"',
    );
    const low = await call('restock-item', { sku: 'a', note: 'n', quantity: 0 });
    expect(low.content[0]!.text).toContain('argument "quantity" must be >= 1');
    const extra = await call('restock-item', { sku: 'a', note: 'n', quantity: 1, admin: true });
    expect(extra.content[0]!.text).toContain('unknown argument "admin"');
    expect(api.seen.length).toBe(before);
  });

  it('path traversal through a path argument is impossible', async () => {
    const before = api.seen.length;
    const slash = await call('get-order', { orderId: 'a/b' });
    expect(slash.isError).toBeFalsy();
    expect(api.seen[before]!.url.startsWith('/api/echo/orders/a%2Fb')).toBe(true);
    // A dot segment in any spelling is refused: an API (or proxy) decoding %2F or %2E would walk up.
    for (const orderId of ['..', '../../admin', '%2e%2e%2fadmin']) {
      const dots = await call('get-order', { orderId });
      expect(dots.isError, orderId).toBe(true);
      expect(dots.content[0]!.text).toContain('it would change the path');
    }
    expect(api.seen.length).toBe(before + 1);
  });

  it('an API failure (status ≥ 400) is an isError result with the status and an excerpt', async () => {
    for (const code of [400, 404, 500]) {
      const r = await call('status', { code: String(code) });
      expect(r.isError, String(code)).toBe(true);
      expect(r.content[0]!.text).toMatch(new RegExp(`^HTTP ${code} from api: \\{"error":"status ${code}"`));
      expect(r.content[0]!.text!.length).toBeLessThan(2_100);
    }
  });

  it('other content types: text, images, and embedded resources for the rest', async () => {
    expect((await call('text')).content).toEqual([{ type: 'text', text: 'plain words' }]);
    expect((await call('png')).content).toEqual([
      {
        type: 'image',
        data: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64'),
        mimeType: 'image/png',
      },
    ]);
    const pdf = (await call('pdf')).content[0]!;
    expect(pdf.type).toBe('resource');
    expect(pdf.resource).toMatchObject({
      mimeType: 'application/pdf',
      blob: Buffer.from('%PDF-1.4').toString('base64'),
    });
    expect((await call('no-content')).content[0]!.text).toBe('HTTP 204 (no content)');
    // A tool with an output schema must give structured content: an answer that cannot is an error result.
    const typed = await call('text-typed');
    expect(typed.isError).toBe(true);
    expect(typed.content[0]!.text).toContain("not JSON, so it cannot match the tool's output schema");
    expect(typed.content[1]!.text).toBe('plain words');
    const empty = await call('empty-typed');
    expect(empty.isError).toBe(true);
    expect(empty.content[0]!.text).toContain('the answer is empty');
    const bad = await call('not-json');
    expect(bad.isError).toBe(true);
    expect(bad.content[0]!.text).toContain('not valid JSON');
  });

  it('redirects are followed only within the base URL', async () => {
    const inside = await call('redirect-inside');
    expect(JSON.parse(inside.content[0]!.text!).url).toBe('/api/echo/after-redirect');
    for (const name of ['redirect-outside', 'redirect-above']) {
      const r = await call(name);
      expect(r.isError, name).toBe(true);
      expect(r.content[0]!.text).toContain('not followed');
    }
    expect(api.seen.some((s) => s.url.startsWith('/admin'))).toBe(false);
  });

  it('a response over limits.max_response_bytes, a timeout and an unreachable API are JSON-RPC errors naming the upstream', async () => {
    const big = await call('big').catch((e: unknown) => e);
    expect(big).toBeInstanceOf(McpError);
    expect((big as McpError).message).toContain('upstream "api" answered with more than');
    const t0 = Date.now();
    const hang = await call('hang').catch((e: unknown) => e);
    expect(hang).toBeInstanceOf(McpError);
    expect((hang as McpError).code).toBe(-32003);
    expect((hang as McpError).message).toContain('upstream "api" did not answer in time');
    expect(Date.now() - t0).toBeLessThan(5_000);
    const down = await call('unreachable').catch((e: unknown) => e);
    expect(down).toBeInstanceOf(McpError);
    expect((down as McpError).code).toBe(-32001);
    expect((down as McpError).message).toContain('upstream "down" cannot be reached');
  });
});

describe('REST upstream config errors', () => {
  it('a broken tool definition is refused at load time, naming the tool and the problem', async () => {
    await expect(
      startGateway(`
upstreams:
  api:
    type: rest
    base_url: http://127.0.0.1:1/api
    tools: [{ name: get-order, method: GET, path: "/orders/{id}" }]
routes: [{ path: /mcp, upstreams: [api] }]
`),
    ).rejects.toThrow(
      /upstreams\.api\.tools\.0.*the path names \{id\} but no path parameter "id" is declared/s,
    );
  });
});
