// OpenAPI documents as MCP tools, end to end: three documents written for these tests (a petstore in
// OpenAPI 3.0.3, a larger commerce API in 3.1.0, a small Swagger 2.0 one) served as REST upstreams through
// the gateway to the official SDK client. For each: the generated tools (a file snapshot plus targeted
// checks: sanitised unique names, no $ref left, allOf bodies flattened, nullable as type arrays, method
// annotations), the exact request the API receives for a call, selection and overrides (ACLs included),
// startup errors naming the upstream, documents served by URL, and `gatehouse openapi`.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ApiKeyStore } from '../../src/auth/api-keys.ts';
import { openapiCommand } from '../../src/cli/openapi.ts';
import { parseConfig } from '../../src/config/load.ts';
import { loadOpenApi, toolsFromOpenApi } from '../../src/upstream/rest/openapi.ts';
import { type RestEcho, type SeenRequest, startRestEcho } from '../fixtures/rest-echo.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/openapi');
const PETSTORE = join(FIXTURES, 'petstore-3.0.yaml');
const COMMERCE = join(FIXTURES, 'commerce-3.1.yaml');
const LEGACY = join(FIXTURES, 'legacy-2.0.yaml');
const DOCS = { 'petstore-3.0': PETSTORE, 'commerce-3.1': COMMERCE, 'legacy-2.0': LEGACY } as const;
type DocName = keyof typeof DOCS;
const ROUTE: Record<DocName, string> = {
  'petstore-3.0': '/petstore',
  'commerce-3.1': '/commerce',
  'legacy-2.0': '/legacy',
};
const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;

type Tool = Awaited<ReturnType<Client['listTools']>>['tools'][number];
type ToolResult = {
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

/** Serves the fixture documents under /specs/, and a stock-level API under /commerce/v1/ (relative server). */
async function startSpecHost(): Promise<{ origin: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/specs/')) {
      try {
        const text = readFileSync(join(FIXTURES, basename(url)), 'utf8');
        res.writeHead(200, { 'content-type': 'application/yaml' });
        return res.end(text);
      } catch {
        res.writeHead(404);
        return res.end('not found');
      }
    }
    if (url.startsWith('/commerce/v1/inventory/')) {
      seen.push(`${req.method} ${url}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ sku: decodeURIComponent(url.split('/').at(-1)!), onHand: 3 }));
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function generate(file: string, opts: Parameters<typeof toolsFromOpenApi>[1] = {}) {
  return toolsFromOpenApi(await loadOpenApi(file, ROOT), opts);
}

describe('OpenAPI documents as tools, through the gateway', () => {
  let api: RestEcho;
  let host: Awaited<ReturnType<typeof startSpecHost>>;
  let gw: RunningGateway;
  let dir: string;
  const keys: Record<string, string> = {};
  const clients: Client[] = [];
  const listed: Partial<Record<DocName, Tool[]>> = {};
  const methods: Record<string, string> = {};

  async function connect(path: string, key?: string): Promise<Client> {
    const client = new Client({ name: 'openapi-test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(
        new URL(`${gw.base}${path}`),
        key ? { requestInit: { headers: { authorization: `Bearer ${key}` } } } : {},
      ),
    );
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    api = await startRestEcho();
    host = await startSpecHost();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-'));
    const store = new ApiKeyStore(join(dir, 'keys.db'));
    keys.staff = store.create({ name: 'staff-bot', groups: ['staff'], now: Date.now() });
    keys.admin = store.create({ name: 'admin-bot', groups: ['admins'], now: Date.now() });
    store.close();
    const echo = `${api.origin}/api/echo`;
    gw = await startGateway(`
api_keys: { store: "${join(dir, 'keys.db')}" }
health: { interval: 0 }
upstreams:
  petstore: { type: rest, base_url: "${echo}", openapi: { spec: "${PETSTORE}" } }
  commerce: { type: rest, base_url: "${echo}", openapi: { spec: "${COMMERCE}" } }
  legacy: { type: rest, base_url: "${echo}", openapi: { spec: "${LEGACY}" } }
  curated:
    type: rest
    base_url: "${echo}"
    openapi:
      spec: "${PETSTORE}"
      include: { tags: [pets, store] }
      exclude: { operations: [findPetsByStatus], paths: ["/store/orders/*"] }
      overrides:
        listPets:
          name: pets-list
          description: Every pet in the shelter.
          annotations: { title: Pets, open_world_hint: false }
        deletePet: { annotations: { destructive_hint: false } }
        getInventory: { acl: { allow: [admins] } }
        "GET /pets/{petId}/vaccinations": { acl: { allow: [admins] } }
        "PATCH /pets/{petId}": { name: pets-patch, acl: { allow: [admins] } }
  byurl: { type: rest, base_url: "${echo}", openapi: { spec: "${host.origin}/specs/petstore-3.0.yaml" } }
  relative: { type: rest, openapi: { spec: "${host.origin}/specs/commerce-3.1.yaml" } }
routes:
  - { path: /petstore, upstreams: [petstore] }
  - { path: /commerce, upstreams: [commerce] }
  - { path: /legacy, upstreams: [legacy] }
  - path: /curated
    upstreams: [curated]
    auth: { api_keys: true }
    acl: { default: { allow: [staff, admins] } }
  - { path: /byurl, upstreams: [byurl] }
  - { path: /relative, upstreams: [relative] }
`);
    for (const [doc, route] of Object.entries(ROUTE) as [DocName, string][]) {
      listed[doc] = (await (await connect(route)).listTools()).tools;
      for (const t of (await generate(DOCS[doc])).tools) methods[t.name] = t.method;
    }
  });
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gw?.close();
    await api?.close();
    await host?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tool = (doc: DocName, name: string) => {
    const t = listed[doc]!.find((x) => x.name === name);
    if (!t) throw new Error(`no tool ${name} in ${doc}: ${listed[doc]!.map((x) => x.name).join(', ')}`);
    return t;
  };
  const props = (t: Tool) => t.inputSchema.properties as Record<string, Record<string, unknown>>;
  let client: Record<DocName, Client>;
  const call = async (doc: DocName, name: string, args: Record<string, unknown>) => {
    client ??= {
      'petstore-3.0': await connect(ROUTE['petstore-3.0']),
      'commerce-3.1': await connect(ROUTE['commerce-3.1']),
      'legacy-2.0': await connect(ROUTE['legacy-2.0']),
    };
    const before = api.seen.length;
    const result = (await client[doc].callTool({ name, arguments: args })) as ToolResult;
    const seen: SeenRequest | undefined = api.seen[before];
    expect(api.seen.length, 'one request reached the API').toBe(before + 1);
    return { result, seen: seen!, body: seen?.body ? JSON.parse(seen.body) : undefined };
  };

  describe('generation', () => {
    for (const doc of Object.keys(DOCS) as DocName[]) {
      it(`${doc}: the listed tools match the snapshot`, async () => {
        const tools = listed[doc]!.map((t) => ({
          name: t.name,
          ...(t.title !== undefined ? { title: t.title } : {}),
          description: t.description,
          inputSchema: t.inputSchema,
          ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}),
          ...(t.annotations ? { annotations: t.annotations } : {}),
        }));
        await expect(`${JSON.stringify(tools, null, 2)}\n`).toMatchFileSnapshot(
          `__snapshots__/${doc}.tools.json`,
        );
      });

      it(`${doc}: names are valid and unique, no $ref is left, GET is read-only and DELETE destructive`, () => {
        const tools = listed[doc]!;
        const names = tools.map((t) => t.name);
        expect(new Set(names).size).toBe(names.length);
        for (const n of names) expect(n).toMatch(NAME_RE);
        expect(JSON.stringify(tools)).not.toContain('$ref');
        for (const t of tools) {
          const method = methods[t.name];
          if (method === 'GET') expect(t.annotations, t.name).toMatchObject({ readOnlyHint: true });
          else expect(t.annotations?.readOnlyHint, t.name).toBeUndefined();
          if (method === 'DELETE') expect(t.annotations, t.name).toMatchObject({ destructiveHint: true });
          else expect(t.annotations?.destructiveHint, t.name).toBeUndefined();
        }
      });
    }

    it('petstore-3.0: every operation is a tool, named by operationId or method and path', () => {
      expect(listed['petstore-3.0']!.map((t) => t.name)).toEqual([
        'listPets',
        'addPet',
        'findPetsByStatus',
        'getPetById',
        'updatePet',
        'deletePet',
        'patch_pets_petId',
        'get_pets_petId_vaccinations',
        'getInventory',
        'placeOrder',
        'getOrderById',
        'deleteOrder',
        'createUser',
        'createUsersWithList',
        'loginUser',
        'logoutUser',
        'getUserByName',
        'updateUser',
        'deleteUser',
      ]);
    });

    it('petstore-3.0: nullable becomes a type array (enums gain null), allOf and $ref are flattened', () => {
      const add = tool('petstore-3.0', 'addPet');
      expect(props(add).birthDate).toEqual({ type: ['string', 'null'], format: 'date' });
      // `nullable` next to an allOf of a $ref: the merged object also accepts null.
      expect(props(add).category).toMatchObject({
        type: ['object', 'null'],
        description: "The shelter's category, if any.",
        properties: { id: { type: 'integer', format: 'int64' }, name: { type: 'string', example: 'Dogs' } },
      });
      expect(props(add).status).toMatchObject({ type: 'string', enum: ['available', 'pending', 'adopted'] });
      expect(props(tool('petstore-3.0', 'patch_pets_petId')).status).toEqual({
        type: ['string', 'null'],
        enum: ['available', 'pending', 'adopted', null],
      });
      // Pet is allOf [{id}, NewPet]: one object in the output, its readOnly id out of request bodies.
      expect(add.outputSchema).toMatchObject({ type: 'object', required: ['id', 'name', 'species'] });
      expect(Object.keys(add.outputSchema!.properties!)).toEqual([
        'id',
        'name',
        'species',
        'category',
        'photoUrls',
        'tags',
        'status',
        'birthDate',
      ]);
      const update = tool('petstore-3.0', 'updatePet');
      expect(props(update).id).toBeUndefined();
      expect(update.inputSchema.required).toEqual(['petId', 'name', 'species']);
      // writeOnly: sent, never returned.
      const user = tool('petstore-3.0', 'updateUser');
      expect(props(user).password).toMatchObject({ writeOnly: true });
      expect(user.outputSchema!.properties!.password).toBeUndefined();
      // A body field named like the path parameter is renamed body_<name>.
      expect(user.inputSchema.required).toEqual(['username', 'body_username', 'email']);
      // 3.0's boolean exclusiveMinimum is a number in JSON Schema 2020-12.
      expect(props(tool('petstore-3.0', 'placeOrder')).quantity).toEqual({
        type: 'integer',
        format: 'int32',
        exclusiveMinimum: 0,
      });
      // A non-object body is one argument; a non-object answer is wrapped as { result }.
      const many = tool('petstore-3.0', 'createUsersWithList');
      expect(Object.keys(props(many))).toEqual(['body']);
      expect(props(many).body).toMatchObject({
        type: 'array',
        minItems: 1,
        description: 'The users to create.',
      });
      expect(tool('petstore-3.0', 'loginUser').outputSchema).toEqual({
        type: 'object',
        properties: { result: { type: 'string' } },
        required: ['result'],
      });
      expect(tool('petstore-3.0', 'findPetsByStatus').description).toBe(
        'Find pets by status\n\nUse listPets with the status parameter instead.\n\nDeprecated.',
      );
    });

    it('commerce-3.1: operationIds are sanitised, a clash gets _2, multipart is skipped', () => {
      const names = listed['commerce-3.1']!.map((t) => t.name);
      expect(names).toHaveLength(40);
      for (const n of [
        'catalog_listProducts',
        'List_Categories',
        'Get_Category',
        'get_categories_categoryId_products',
        'customers.orders.list',
        'orders_lines_remove',
        'payments_capture',
        'payments_receipt',
        'search_products',
        'search_products_2',
      ])
        expect(names).toContain(n);
      expect(names).not.toContain('catalog_uploadProductImage');
      // The GET (first in the document) keeps the name; the POST gets _2.
      expect(props(tool('commerce-3.1', 'search_products')).q).toBeDefined();
      expect(props(tool('commerce-3.1', 'search_products_2')).query).toBeDefined();
    });

    it('commerce-3.1: allOf bodies are flattened into arguments, with their required fields', () => {
      const create = tool('commerce-3.1', 'orders_create');
      expect(Object.keys(props(create))).toEqual([
        'Idempotency-Key',
        'customerId',
        'lines',
        'shippingAddress',
        'couponCode',
        'channel',
      ]);
      expect(create.inputSchema.required).toEqual(['customerId', 'lines']);
      expect(props(create).couponCode).toEqual({ type: ['string', 'null'] });
      expect(props(create).lines).toMatchObject({
        type: 'array',
        items: { type: 'object', required: ['sku', 'quantity'] },
      });
      const product = tool('commerce-3.1', 'catalog_createProduct');
      expect(product.inputSchema.required).toEqual(['sku', 'name', 'price']);
      expect(props(product).price).toMatchObject({ type: 'object', required: ['amount', 'currency'] });
      const refund = tool('commerce-3.1', 'orders_refund');
      expect(Object.keys(props(refund))).toEqual(['orderId', 'Idempotency-Key', 'amount', 'reason', 'lines']);
      expect(refund.inputSchema.required).toEqual(['orderId', 'amount', 'reason']);
      // Path sku and body sku: the body's is body_sku.
      expect(Object.keys(props(tool('commerce-3.1', 'inventory_set')))).toEqual([
        'sku',
        'body_sku',
        'onHand',
        'reserved',
        'warehouse',
      ]);
    });

    it('commerce-3.1: anyOf/oneOf stay, recursion stops at its first repetition, Accept/Authorization are ignored', async () => {
      const pay = props(tool('commerce-3.1', 'payments_create'));
      expect((pay.method!.oneOf as unknown[]).length).toBe(3);
      expect(pay.method!.discriminator).toBeUndefined();
      expect(props(tool('commerce-3.1', 'search_products_2')).query!.anyOf).toEqual([
        { type: 'string', minLength: 2 },
        {
          type: 'object',
          properties: {
            category: { type: 'string' },
            minPrice: { type: 'number', minimum: 0 },
            maxPrice: { type: 'number', minimum: 0 },
            inStock: { type: 'boolean' },
          },
        },
      ]);
      const create = tool('commerce-3.1', 'Create_Category');
      expect(create.inputSchema).toEqual({
        type: 'object',
        properties: {
          id: { type: 'string' },
          name: { type: 'string' },
          children: { type: 'array', items: {} },
        },
        required: ['name'],
        additionalProperties: false,
      });
      expect(tool('commerce-3.1', 'List_Categories').outputSchema!.properties!.result).toEqual({
        type: 'array',
        items: create.outputSchema,
      });
      expect(props(tool('commerce-3.1', 'catalog_listProducts')).Accept).toBeUndefined();
      expect(props(tool('commerce-3.1', 'customers_delete')).Authorization).toBeUndefined();
      expect(tool('commerce-3.1', 'payments_receipt').outputSchema).toBeUndefined();
      const { notes } = await generate(COMMERCE);
      expect(notes).toContain(
        'POST /categories body.children: #/components/schemas/Category is recursive; below its first repetition any value is accepted (the API checks it)',
      );
      expect(notes).toContain(
        'POST /products/{productId}/images (catalog/uploadProductImage): its request body is multipart/form-data, not JSON; skipped',
      );
      expect(notes).toContain(
        'DELETE /customers/{customerId} (customers/delete): header parameter "Authorization" is ignored (the gateway sets it)',
      );
      expect(notes).toContain(
        'search/products: named "search_products_2" (operation "search products" is "search_products"); an override can rename it',
      );
    });

    it('legacy-2.0: body and query parameters, the formData operation skipped with a note', async () => {
      expect(listed['legacy-2.0']!.map((t) => t.name)).toEqual([
        'listItems',
        'createItem',
        'getItem',
        'deleteItem',
      ]);
      const create = tool('legacy-2.0', 'createItem');
      expect(Object.keys(props(create))).toEqual(['X-Tenant', 'name', 'quantity', 'tags', 'location']);
      expect(create.inputSchema.required).toEqual(['X-Tenant', 'name', 'quantity']);
      expect(props(create).location).toEqual({ type: ['string', 'null'] });
      expect(create.outputSchema).toMatchObject({ type: 'object', required: ['name', 'quantity', 'id'] });
      const g = await generate(LEGACY);
      expect(g.baseUrl).toBe('https://warehouse.legacy.example/api/v1');
      expect(g.notes).toEqual([
        'POST /items/{itemId}/image (uploadItemImage): its formData parameter "file" is a form upload, not JSON; skipped',
      ]);
    });

    it('include/exclude by tag, path and operationId; overrides of name, description and annotations', async () => {
      const c = await connect('/curated', keys.staff);
      const tools = (await c.listTools()).tools;
      expect(tools.map((t) => t.name)).toEqual([
        'pets-list',
        'addPet',
        'getPetById',
        'updatePet',
        'deletePet',
        'placeOrder',
      ]);
      const list = tools[0]!;
      expect(list.description).toBe('Every pet in the shelter.');
      expect(list.title).toBe('Pets');
      expect(list.annotations).toEqual({
        title: 'Pets',
        readOnlyHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
      expect(tools.find((t) => t.name === 'deletePet')!.annotations).toEqual({
        title: 'Remove a pet',
        destructiveHint: false,
        idempotentHint: true,
      });
      const { notes } = await generate(PETSTORE, {
        include: { tags: ['users'] },
        overrides: { noSuchOperation: { description: 'x' } },
      });
      expect(notes).toEqual([
        'overrides."noSuchOperation": the document has no operation with this operationId (or METHOD /path)',
      ]);
    });

    it("an override's ACL applies to its tool, whether named by operationId, METHOD /path or a new name", async () => {
      const adminOnly = ['get_pets_petId_vaccinations', 'getInventory', 'pets-patch'];
      const admin = await connect('/curated', keys.admin);
      const adminTools = (await admin.listTools()).tools.map((t) => t.name);
      for (const n of adminOnly) expect(adminTools).toContain(n);
      const staff = await connect('/curated', keys.staff);
      const before = api.seen.length;
      for (const n of adminOnly) {
        const e = await staff.callTool({ name: n, arguments: { petId: 1 } }).catch((x: unknown) => x);
        expect(e, n).toBeInstanceOf(McpError);
        expect((e as McpError).message).toContain(`Unknown tool: ${n}`);
      }
      expect(api.seen.length).toBe(before);
      const ok = (await admin.callTool({
        name: 'get_pets_petId_vaccinations',
        arguments: { petId: 1 },
      })) as ToolResult;
      expect(api.seen.at(-1)!.url).toBe('/api/echo/pets/1/vaccinations');
      expect(ok.isError).toBe(true); // the echo is not a list of vaccinations (see below)
    });

    it('two overrides claiming one name, or an invalid override name, are refused', async () => {
      await expect(
        generate(PETSTORE, { overrides: { listPets: { name: 'pets' }, addPet: { name: 'pets' } } }),
      ).rejects.toThrow('overrides: operations "listPets" and "addPet" would both be the tool "pets"');
      await expect(generate(PETSTORE, { overrides: { listPets: { name: 'list pets' } } })).rejects.toThrow(
        'overrides."listPets".name: "list pets" is not a tool name',
      );
      // An override's derived name wins over another operation's: the other one gets _2.
      const g = await generate(COMMERCE, {
        overrides: { 'search/products': { description: 'Structured.' } },
      });
      expect(g.tools.find((t) => t.description === 'Structured.')!.name).toBe('search_products');
      expect(g.tools.find((t) => t.method === 'GET' && t.path === '/search/products')!.name).toBe(
        'search_products_2',
      );
    });
  });

  describe('calls: the exact request the API receives', () => {
    it('petstore-3.0: query arrays (exploded and not), a header, limits; the answer checked against the output schema', async () => {
      const { result, seen } = await call('petstore-3.0', 'listPets', {
        status: ['available', 'pending'],
        tags: ['good boy', 'small'],
        limit: 5,
        'X-Request-ID': '5f0c6a4e-6d1c-4c38-9a0e-2f1e0b6b7a10',
      });
      expect(seen.method).toBe('GET');
      expect(seen.url).toBe('/api/echo/pets?status=available&status=pending&tags=good%20boy%2Csmall&limit=5');
      expect(seen.headers['x-request-id']).toBe('5f0c6a4e-6d1c-4c38-9a0e-2f1e0b6b7a10');
      expect(seen.headers.accept).toBe('application/json, */*;q=0.8');
      // The echo is not a list of pets: an error result carrying the answer (MCP clients reject
      // structured content that does not match the tool's output schema).
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toBeUndefined();
      expect(result.content[0]!.text).toBe(
        "HTTP 200 from petstore: the answer does not match the tool's output schema (/result must be array)",
      );
      expect(JSON.parse(result.content[1]!.text!)).toMatchObject({ method: 'GET' });
      const bad = (await client['petstore-3.0'].callTool({
        name: 'listPets',
        arguments: { status: ['lost'] },
      })) as ToolResult;
      expect(bad.isError).toBe(true);
      expect(bad.content[0]!.text).toMatch(
        /^Invalid arguments for tool listPets: argument "status.0" must be/,
      );
    });

    it('petstore-3.0: path parameters encoded whole, the body assembled from flattened arguments, null kept', async () => {
      const user = await call('petstore-3.0', 'updateUser', {
        username: 'jo.doe',
        body_username: 'jo',
        email: 'jo@example.com',
        phone: null,
      });
      expect(user.seen.method).toBe('PUT');
      expect(user.seen.url).toBe('/api/echo/users/jo.doe');
      expect(user.seen.headers['content-type']).toBe('application/json');
      expect(user.body).toEqual({ username: 'jo', email: 'jo@example.com', phone: null });
      const patch = await call('petstore-3.0', 'patch_pets_petId', {
        petId: 7,
        status: null,
        birthDate: null,
      });
      expect(patch.seen.method).toBe('PATCH');
      expect(patch.seen.url).toBe('/api/echo/pets/7');
      expect(patch.body).toEqual({ status: null, birthDate: null });
      const del = await call('petstore-3.0', 'deletePet', { petId: 7, 'If-Match': '"v1"' });
      expect(del.seen.method).toBe('DELETE');
      expect(del.seen.headers['if-match']).toBe('"v1"');
      expect(del.seen.body).toBe('');
      expect(del.result.isError).toBeFalsy(); // no output schema: the answer as text
      expect(JSON.parse(del.result.content[0]!.text!).url).toBe('/api/echo/pets/7');
      const many = await call('petstore-3.0', 'createUsersWithList', {
        body: [{ username: 'a', email: 'a@example.com' }],
      });
      expect(many.seen.url).toBe('/api/echo/users/createWithList');
      expect(many.body).toEqual([{ username: 'a', email: 'a@example.com' }]);
    });

    it('commerce-3.1: deepObject, pipeDelimited, form explode=false and header parameters', async () => {
      const { seen } = await call('commerce-3.1', 'catalog_listProducts', {
        filter: { category: 'shoes', maxPrice: 100, inStock: true },
        sort: ['-price', 'name'],
        fields: ['id', 'name'],
        page: 2,
        'Accept-Language': 'fr-CA',
      });
      expect(seen.url).toBe(
        '/api/echo/products?filter%5Bcategory%5D=shoes&filter%5BmaxPrice%5D=100&filter%5BinStock%5D=true&sort=-price%7Cname&fields=id%2Cname&page=2',
      );
      expect(seen.headers['accept-language']).toBe('fr-CA');
      const orders = await call('commerce-3.1', 'orders_list', {
        status: ['open', 'paid'],
        created: { gte: '2025-01-01', lte: '2025-01-31' },
      });
      expect(orders.seen.url).toBe(
        '/api/echo/orders?status=open&status=paid&created%5Bgte%5D=2025-01-01&created%5Blte%5D=2025-01-31',
      );
      const stock = await call('commerce-3.1', 'inventory_list', { warehouse: ['w1', 'w2'], below: 3 });
      expect(stock.seen.url).toBe('/api/echo/inventory?warehouse=w1%7Cw2&below=3');
      const search = await call('commerce-3.1', 'search_products', { q: 'red shoes', in: ['name', 'sku'] });
      expect(search.seen.url).toBe('/api/echo/search/products?q=red%20shoes&in=name%20sku');
    });

    it('commerce-3.1: allOf bodies from flattened arguments, renamed body fields, the JSON media type kept', async () => {
      const order = await call('commerce-3.1', 'orders_create', {
        'Idempotency-Key': 'k-1',
        customerId: 'c1',
        lines: [{ sku: 'A', quantity: 2 }],
        couponCode: null,
      });
      expect(order.seen.method).toBe('POST');
      expect(order.seen.url).toBe('/api/echo/orders');
      expect(order.seen.headers['idempotency-key']).toBe('k-1');
      expect(order.body).toEqual({ customerId: 'c1', lines: [{ sku: 'A', quantity: 2 }], couponCode: null });
      const set = await call('commerce-3.1', 'inventory_set', {
        sku: 'SKU/1 x',
        body_sku: 'SKU-1',
        onHand: 5,
      });
      expect(set.seen.method).toBe('PUT');
      expect(set.seen.url).toBe('/api/echo/inventory/SKU%2F1%20x');
      expect(set.body).toEqual({ sku: 'SKU-1', onHand: 5 });
      const patch = await call('commerce-3.1', 'catalog_updateProduct', {
        productId: 'prd_1',
        description: null,
      });
      expect(patch.seen.headers['content-type']).toBe('application/merge-patch+json');
      expect(patch.body).toEqual({ description: null });
      const pay = await call('commerce-3.1', 'payments_create', {
        orderId: 'o1',
        amount: { amount: '10.00', currency: 'EUR' },
        method: { type: 'card', token: 'tok_1' },
      });
      expect(pay.body).toEqual({
        orderId: 'o1',
        amount: { amount: '10.00', currency: 'EUR' },
        method: { type: 'card', token: 'tok_1' },
      });
    });

    it('commerce-3.1: an answer that matches the output schema is structured content; no argument sets Authorization', async () => {
      const transfer = await call('commerce-3.1', 'inventory_transfer', {
        sku: 'A',
        quantity: 2,
        from: { warehouse: 'w1' },
        to: { store: 's9' },
      });
      expect(transfer.result.isError).toBeFalsy();
      expect(transfer.result.structuredContent).toMatchObject({
        method: 'POST',
        url: '/api/echo/inventory/transfers',
      });
      const del = await call('commerce-3.1', 'customers_delete', { customerId: 'c 1' });
      expect(del.seen.url).toBe('/api/echo/customers/c%201');
      expect(del.seen.headers.authorization).toBeUndefined();
      const before = api.seen.length;
      for (const args of [
        { customerId: 'c1', Authorization: 'Bearer stolen' },
        { customerId: 'c1', Accept: 'text/html' },
      ]) {
        const r = (await client['commerce-3.1'].callTool({
          name: 'customers_delete',
          arguments: args,
        })) as ToolResult;
        expect(r.isError).toBe(true);
        expect(r.content[0]!.text).toContain('unknown argument');
      }
      // oneOf is enforced: a card without its token does not reach the API.
      const r = (await client['commerce-3.1'].callTool({
        name: 'payments_create',
        arguments: { orderId: 'o1', amount: { amount: '1', currency: 'EUR' }, method: { type: 'card' } },
      })) as ToolResult;
      expect(r.isError).toBe(true);
      expect(r.content[0]!.text).toContain('argument "method"');
      expect(api.seen.length).toBe(before);
    });

    it('legacy-2.0: collectionFormat multi and csv, the header, the body parameter', async () => {
      const list = await call('legacy-2.0', 'listItems', {
        tag: ['a', 'b c'],
        fields: ['x', 'y'],
        limit: 3,
        'X-Tenant': 't1',
      });
      expect(list.seen.url).toBe('/api/echo/items?tag=a&tag=b%20c&fields=x%2Cy&limit=3');
      expect(list.seen.headers['x-tenant']).toBe('t1');
      const create = await call('legacy-2.0', 'createItem', {
        'X-Tenant': 't1',
        name: 'bolt',
        quantity: 3,
        location: null,
      });
      expect(create.seen.method).toBe('POST');
      expect(create.seen.url).toBe('/api/echo/items');
      expect(create.seen.headers['content-type']).toBe('application/json');
      expect(create.body).toEqual({ name: 'bolt', quantity: 3, location: null });
    });
  });

  describe('documents served by URL', () => {
    it('a document fetched over HTTP gives the same tools and calls', async () => {
      const c = await connect('/byurl');
      expect((await c.listTools()).tools).toEqual(listed['petstore-3.0']);
      const before = api.seen.length;
      await c.callTool({ name: 'getOrderById', arguments: { orderId: 42 } });
      expect(api.seen[before]!.url).toBe('/api/echo/store/orders/42');
    });

    it('a relative server URL is resolved against where the document is served', async () => {
      const c = await connect('/relative');
      const r = (await c.callTool({ name: 'inventory_get', arguments: { sku: 'A 1' } })) as ToolResult;
      expect(host.seen).toEqual(['GET /commerce/v1/inventory/A%201']);
      expect(r.isError).toBeFalsy();
      expect(r.structuredContent).toEqual({ sku: 'A 1', onHand: 3 });
      const g = toolsFromOpenApi(await loadOpenApi(`${host.origin}/specs/commerce-3.1.yaml`, ROOT));
      expect(g.baseUrl).toBe(`${host.origin}/commerce/v1`);
    });
  });
});

describe('OpenAPI startup errors name the upstream and say what is wrong', () => {
  let dir: string;
  let host: Awaited<ReturnType<typeof startSpecHost>>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-bad-'));
    host = await startSpecHost();
    writeFileSync(
      join(dir, 'invalid.yaml'),
      'openapi: 3.0.3\ninfo: { title: Broken }\npaths:\n  /x:\n    get:\n      responses: { "200": { description: ok } }\n',
    );
    writeFileSync(join(dir, 'not-yaml.yaml'), 'openapi: 3.0.3\ninfo: [\n');
    writeFileSync(join(dir, 'not-openapi.yaml'), 'title: a config, not an API\n');
  });
  afterAll(async () => {
    await host?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = (spec: string, extra = 'base_url: http://127.0.0.1:9/api') =>
    startGateway(`
upstreams:
  shop:
    type: rest
    ${extra}
    openapi: { spec: "${spec}" }
routes: [{ path: /mcp, upstreams: [shop] }]
health: { interval: 0 }
`);

  it('an invalid document', async () => {
    await expect(start(join(dir, 'invalid.yaml'))).rejects.toThrow(
      /upstreams\.shop\.openapi\.spec: .*invalid\.yaml is not a valid OpenAPI document: .*version/,
    );
  });

  it('a missing file, a file that is not YAML, a YAML file that is not OpenAPI', async () => {
    await expect(start(join(dir, 'missing.yaml'))).rejects.toThrow(
      /upstreams\.shop\.openapi\.spec: cannot read the OpenAPI document .*missing\.yaml.*: no such file/,
    );
    await expect(start(join(dir, 'not-yaml.yaml'))).rejects.toThrow(
      /upstreams\.shop\.openapi\.spec: .*not-yaml\.yaml is neither YAML nor JSON/,
    );
    await expect(start(join(dir, 'not-openapi.yaml'))).rejects.toThrow(
      /upstreams\.shop\.openapi\.spec: .*not-openapi\.yaml is not an OpenAPI document/,
    );
  });

  it('a URL that answers 404', async () => {
    await expect(start(`${host.origin}/specs/nope.yaml`)).rejects.toThrow(
      `upstreams.shop.openapi.spec: cannot fetch the OpenAPI document ${host.origin}/specs/nope.yaml: HTTP 404`,
    );
  });

  it('a relative server URL (from a file) without base_url', async () => {
    await expect(start(COMMERCE, '')).rejects.toThrow(
      'upstreams.shop.base_url: set base_url: the OpenAPI document gives no absolute server URL',
    );
  });
});

describe('gatehouse openapi', () => {
  const run = async (source: string, flags: { name?: string; baseUrl?: string } = {}) => {
    let stdout = '';
    let stderr = '';
    const code = await openapiCommand(source, flags, {
      stdout: (s) => {
        stdout += s;
      },
      stderr: (s) => {
        stderr += s;
      },
      cwd: ROOT,
    });
    return { code, stdout, stderr };
  };

  for (const [doc, file] of Object.entries(DOCS) as [DocName, string][]) {
    it(`${doc}: prints a REST upstream with its tools inline that validates as config`, async () => {
      const flags = doc === 'commerce-3.1' ? { baseUrl: 'https://shop.example/commerce/v1' } : {};
      const out = await run(`test/fixtures/openapi/${basename(file)}`, flags);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toMatch(/^# Generated from test\/fixtures\/openapi\/.* by `gatehouse openapi`/);
      const parsed = parseYaml(out.stdout) as { upstreams: Record<string, Record<string, unknown>> };
      const [name, upstream] = Object.entries(parsed.upstreams)[0]!;
      expect(name).toBe(
        { 'petstore-3.0': 'pet-shelter', 'commerce-3.1': 'commerce', 'legacy-2.0': 'legacy-warehouse' }[doc],
      );
      expect(upstream.type).toBe('rest');
      const config = parseConfig(
        `${out.stdout}routes: [{ path: /mcp, upstreams: [${name}] }]\n`,
        'gen.yaml',
        {},
      );
      const u = config.upstreams[name]!;
      if (u.type !== 'rest') throw new Error('not rest');
      const generated = await generate(file);
      expect(u.base_url).toBe(flags.baseUrl ?? generated.baseUrl);
      // The tools round-trip: what the config holds is what the document generates (a `$` included).
      expect(u.tools.map((t) => t.name)).toEqual(generated.tools.map((t) => t.name));
      for (const t of u.tools) {
        const g = generated.tools.find((x) => x.name === t.name)!;
        expect(t.parameters, t.name).toEqual(g.parameters);
        expect(t.request_body, t.name).toEqual(g.request_body);
        expect(t.responses, t.name).toEqual(g.responses);
      }
      for (const n of generated.notes) expect(out.stdout).toContain(`# - ${n}`);
      expect(out.stderr).toContain(`generated upstream "${name}" with ${u.tools.length} tools`);
    });
  }

  it('a pattern with $ survives the config interpolation', async () => {
    const out = await run(COMMERCE, { baseUrl: 'https://shop.example/v1', name: 'shop' });
    expect(out.stdout).toContain('pattern: ^-?[0-9]+(\\.[0-9]{1,2})?$$');
    const config = parseConfig(`${out.stdout}routes: [{ path: /mcp, upstreams: [shop] }]\n`, 'gen.yaml', {});
    const u = config.upstreams.shop!;
    if (u.type !== 'rest') throw new Error('not rest');
    const price = u.tools.find((t) => t.name === 'catalog_createProduct')!.request_body as {
      content: Record<
        string,
        { schema: { properties: { price: { properties: { amount: { pattern: string } } } } } }
      >;
    };
    expect(price.content['application/json']!.schema.properties.price.properties.amount.pattern).toBe(
      '^-?[0-9]+(\\.[0-9]{1,2})?$',
    );
  });

  it('the printed config serves the same tools and requests as the document', async () => {
    const api = await startRestEcho();
    let gw: RunningGateway | undefined;
    let client: Client | undefined;
    try {
      const out = await run(LEGACY, { name: 'legacy', baseUrl: `${api.origin}/api/echo` });
      gw = await startGateway(
        `${out.stdout}routes: [{ path: /mcp, upstreams: [legacy] }]\nhealth: { interval: 0 }\n`,
      );
      client = new Client({ name: 'openapi-cli-test', version: '1' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`)));
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([
        'listItems',
        'createItem',
        'getItem',
        'deleteItem',
      ]);
      await client.callTool({ name: 'listItems', arguments: { tag: ['a', 'b'], 'X-Tenant': 't' } });
      expect(api.seen.at(-1)!.url).toBe('/api/echo/items?tag=a&tag=b');
    } finally {
      await client?.close();
      await gw?.close();
      await api.close();
    }
  });

  it('failures: exit 1 with the reason on stderr and nothing on stdout', async () => {
    const cases: [string, { name?: string; baseUrl?: string }, RegExp][] = [
      [
        'test/fixtures/openapi/missing.yaml',
        {},
        /cannot read the OpenAPI document .*missing\.yaml.*no such file/,
      ],
      [join(ROOT, 'package.json'), {}, /package\.json is not an OpenAPI document/],
      [COMMERCE, {}, /gives no absolute server URL \(only \/commerce\/v1\): pass --base-url/],
      [PETSTORE, { name: 'not a name' }, /--name "not a name": upstream names use letters, digits, _ and -/],
      [PETSTORE, { baseUrl: 'ftp://x' }, /gives no absolute server URL.*pass --base-url/],
    ];
    for (const [source, flags, message] of cases) {
      const out = await run(source, flags);
      expect(out.code, source).toBe(1);
      expect(out.stdout).toBe('');
      expect(out.stderr).toMatch(message);
    }
  });

  it('is a command of the gatehouse CLI', async () => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'src/cli/main.ts'), 'openapi', LEGACY, '--name', 'wh'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(Object.keys((parseYaml(stdout) as { upstreams: object }).upstreams)).toEqual(['wh']);
  });
});
