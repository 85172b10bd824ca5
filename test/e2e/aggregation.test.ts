// Aggregation through the gateway, with the official SDK Client: one gateway, several routes over the
// same three upstreams (server-everything and two fixture servers whose tool names, prompt names and a
// resource URI collide, and whose own lists paginate), one route per prefix mode.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  type Notification,
  PromptListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import { rpcError, textOf, waitFor } from '../helpers/sdk.ts';

const LONG = 'l'.repeat(125); // fits as it is; `alpha__` + it does not (128 max)
const ALPHA_TOOLS = ['echo', 'search', 'alpha_one', 'alpha_two', 'drop_me', 'secret_key', LONG];
const BETA_TOOLS = ['echo', 'search', 'beta_one', 'beta_two', 'beta_three', 'hidden_tool'];
/** After the upstreams' own curation (alpha excludes secret_*, beta includes echo, search, beta_*). */
const ALPHA_VISIBLE = ['echo', 'search', 'alpha_one', 'alpha_two', 'drop_me', LONG];
const BETA_VISIBLE = ['echo', 'search', 'beta_one', 'beta_two', 'beta_three'];
const PAGE = 3;

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

interface Harness {
  gateway: Gateway;
  base: string;
  logs: LogLine[];
}

async function startGatewayWithLogs(yaml: string): Promise<Harness> {
  const config = parseConfig(yaml, 'test.yaml', {});
  config.audit.enabled = false; // no audit database in the working tree (audit*.test.ts test it)
  config.listen.port = 0;
  const logs: LogLine[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as LogLine);
      },
    },
  );
  const gateway = await createGateway(
    { config, file: 'test.yaml', baseDir: process.cwd(), env: {} },
    { logger },
  );
  const base = (await gateway.start()).replace('localhost', '127.0.0.1');
  return { gateway, base, logs };
}

const clients: Client[] = [];

async function connect(url: string, capabilities: Record<string, object> = {}): Promise<Client> {
  const client = new Client({ name: 'aggregation-test', version: '1.0.0' }, { capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  clients.push(client);
  return client;
}

type Element<L> = L extends readonly (infer T)[] ? T : never;
/** The params of a list request (typed, so that listAll infers the result from the lister). */
type Page = { cursor?: string };

/** Follows the gateway's cursors to the end; returns every item and each page's size. */
async function listAll<R extends { nextCursor?: string | undefined }, K extends keyof R>(
  list: (params: Page) => Promise<R>,
  field: K,
): Promise<{ items: Element<R[K]>[]; pages: number[]; cursors: string[] }> {
  const items: Element<R[K]>[] = [];
  const pages: number[] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const res = await list(cursor === undefined ? {} : { cursor });
    const page = res[field] as Element<R[K]>[];
    items.push(...page);
    pages.push(page.length);
    if (!res.nextCursor) return { items, pages, cursors };
    cursors.push(res.nextCursor);
    cursor = res.nextCursor;
  }
  throw new Error('more than 100 pages');
}

async function toolNames(c: Client): Promise<string[]> {
  return (await listAll((p: Page) => c.listTools(p), 'tools')).items.map((t) => t.name);
}

/** Records the notifications a client receives (on its GET stream). */
function record(c: Client): Notification[] {
  const seen: Notification[] = [];
  c.setNotificationHandler(ToolListChangedNotificationSchema, (n) => void seen.push(n));
  c.setNotificationHandler(PromptListChangedNotificationSchema, (n) => void seen.push(n));
  c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void seen.push(n));
  return seen;
}

describe('aggregation: server-everything + two fixture servers behind one gateway', () => {
  let everything: EverythingServer;
  let alpha: FixtureHandle;
  let beta: FixtureHandle;
  let h: Harness;
  /** server-everything's own tool names, listed directly. */
  let E: string[];

  const url = (path: string) => `${h.base}${path}`;

  beforeAll(async () => {
    [everything, alpha, beta] = await Promise.all([
      startEverything(),
      startFixture({
        name: 'alpha',
        tools: ALPHA_TOOLS,
        prompts: ['greet', 'summarize'],
        resources: ['file:///shared.txt', 'alpha://doc/1', 'alpha://doc/2'],
        templates: ['alpha://item/{id}'],
        pageSize: 2,
        instructions: 'Alpha instructions.',
      }),
      startFixture({
        name: 'beta',
        tools: BETA_TOOLS,
        prompts: ['greet'],
        resources: ['file:///shared.txt', 'beta://doc/1'],
        templates: ['beta://item/{id}'],
        pageSize: 3,
      }),
    ]);
    const direct = new Client({ name: 'direct', version: '1' });
    await direct.connect(new StreamableHTTPClientTransport(new URL(everything.url)));
    E = (await direct.listTools()).tools.map((t) => t.name);
    await direct.close();
    expect(E).toContain('echo');

    h = await startGatewayWithLogs(`
upstreams:
  everything: { type: streamable-http, url: "${everything.url}" }
  alpha:
    type: streamable-http
    url: "${alpha.url}"
    tools:
      exclude: ["secret_*"]
      overrides:
        search: { description: "Alpha search (curated)", title: "Alpha Search" }
  beta:
    type: streamable-http
    url: "${beta.url}"
    tools: { include: [echo, search, "beta_*"] }
routes:
  - path: /always
    upstreams: [everything, alpha, beta]
    tools: { prefix: always }
    prompts: { prefix: always }
    resources: { prefix: always }
    page_size: ${PAGE}
  - path: /conflict
    upstreams: [everything, alpha, beta]
    prompts: { prefix: never }
    page_size: ${PAGE}
  - path: /never
    upstreams: [everything, alpha, beta]
    tools: { prefix: never }
    page_size: ${PAGE}
  - path: /filtered
    upstreams: [alpha, beta]
    tools: { include: ["alpha:*", "beta:s*"], exclude: ["alpha:drop_*"] }
  - path: /solo
    upstreams: [alpha]
health: { interval: 0 }
`);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await h?.gateway.stop();
    await Promise.allSettled([everything?.close(), alpha?.close(), beta?.close()]);
  });

  describe('initialize', () => {
    it('several upstreams: the gateway’s identity, the union of capabilities, instructions per upstream', async () => {
      const c = await connect(url('/conflict'));
      expect(c.getServerVersion()?.name).toBe('gatehouse');
      expect(c.getServerCapabilities()).toMatchObject({
        tools: { listChanged: true },
        prompts: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        logging: {},
        completions: {},
      });
      const instructions = c.getInstructions() ?? '';
      expect(instructions).toContain('## everything\n');
      expect(instructions).toContain('## alpha\nAlpha instructions.');
      expect(instructions).not.toContain('## beta');
      expect(instructions.indexOf('## everything')).toBeLessThan(instructions.indexOf('## alpha'));
    });

    it('one upstream: its own initialize answer, as it is', async () => {
      const via = await connect(url('/solo'));
      const direct = await connect(alpha.url);
      expect(via.getServerVersion()).toEqual(direct.getServerVersion());
      expect(via.getServerVersion()?.name).toBe('alpha');
      expect(via.getServerCapabilities()).toEqual(direct.getServerCapabilities());
      expect(via.getInstructions()).toBe('Alpha instructions.');
    });

    it('ping is answered by the gateway', async () => {
      const c = await connect(url('/conflict'));
      const before = (await alpha.state()).requests.ping ?? 0;
      await expect(c.ping()).resolves.toEqual({});
      expect((await alpha.state()).requests.ping ?? 0).toBe(before);
    });
  });

  describe('names in each prefix mode, paginated by the gateway', () => {
    it('always: every tool is <upstream>__<tool>; long ones shortened to 128; pages of page_size', async () => {
      const c = await connect(url('/always'));
      const { items, pages } = await listAll((p: Page) => c.listTools(p), 'tools');
      const names = items.map((t) => t.name);
      const longName = names.find((n) => n.startsWith('alpha__lll'));
      expect(longName).toHaveLength(128);
      expect(longName).toMatch(/_[0-9a-f]{8}$/);
      expect(names).toEqual([
        ...E.map((n) => `everything__${n}`),
        ...ALPHA_VISIBLE.map((n) => (n === LONG ? longName : `alpha__${n}`)),
        ...BETA_VISIBLE.map((n) => `beta__${n}`),
      ]);
      expect(pages.slice(0, -1).every((n) => n === PAGE)).toBe(true);
      expect(pages.at(-1)).toBeGreaterThan(0);
      expect(pages.at(-1)).toBeLessThanOrEqual(PAGE);

      // Calls reach the owner under its own name.
      expect(textOf(await c.callTool({ name: 'everything__echo', arguments: { message: 'hi' } }))).toBe(
        'Echo: hi',
      );
      expect(textOf(await c.callTool({ name: 'alpha__echo', arguments: { message: 'hi' } }))).toBe(
        'alpha:echo:{"message":"hi"}',
      );
      expect(textOf(await c.callTool({ name: 'beta__search', arguments: { q: 'x' } }))).toBe(
        'beta:search:{"q":"x"}',
      );
      expect(textOf(await c.callTool({ name: longName!, arguments: {} }))).toBe(`alpha:${LONG}:{}`);
      expect((await alpha.state()).calls.map((x) => x.tool)).toEqual(expect.arrayContaining(['echo', LONG]));
      // The bare name is not a tool of this route.
      expect(await rpcError(c.callTool({ name: 'echo', arguments: { message: 'x' } }))).toEqual({
        code: -32602,
        message: expect.stringContaining('Unknown tool: echo'),
      });
    });

    it('on-conflict: only colliding names are prefixed — all of them, the first upstream’s too', async () => {
      const c = await connect(url('/conflict'));
      const names = await toolNames(c);
      const bare = (n: string, up: string, both: string[]) => (both.includes(n) ? `${up}__${n}` : n);
      expect(names).toEqual([
        ...E.map((n) => bare(n, 'everything', ['echo'])),
        ...ALPHA_VISIBLE.map((n) => bare(n, 'alpha', ['echo', 'search'])),
        ...BETA_VISIBLE.map((n) => bare(n, 'beta', ['echo', 'search'])),
      ]);
      expect(names).toContain(LONG); // 125 characters: as it is
      expect(textOf(await c.callTool({ name: 'everything__echo', arguments: { message: 'e' } }))).toBe(
        'Echo: e',
      );
      expect(textOf(await c.callTool({ name: 'beta__echo', arguments: { message: 'b' } }))).toBe(
        'beta:echo:{"message":"b"}',
      );
      expect(textOf(await c.callTool({ name: 'alpha_one', arguments: {} }))).toBe('alpha:alpha_one:{}');
      expect(textOf(await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }))).toContain('42');
      expect((await rpcError(c.callTool({ name: 'echo', arguments: {} }))).code).toBe(-32602);
    });

    it('never: a collision keeps the first upstream’s (route order) tool and hides the others’, with a warning', async () => {
      const c = await connect(url('/never'));
      const names = await toolNames(c);
      expect(names).toEqual([
        ...E,
        ...ALPHA_VISIBLE.filter((n) => n !== 'echo'),
        ...BETA_VISIBLE.filter((n) => n !== 'echo' && n !== 'search'),
      ]);
      expect(textOf(await c.callTool({ name: 'echo', arguments: { message: 'n' } }))).toBe('Echo: n');
      expect(textOf(await c.callTool({ name: 'search', arguments: { q: 1 } }))).toBe('alpha:search:{"q":1}');
      expect(textOf(await c.callTool({ name: 'beta_two', arguments: {} }))).toBe('beta:beta_two:{}');
      const before = (await beta.state()).calls.length;
      expect(await rpcError(c.callTool({ name: 'beta__search', arguments: {} }))).toEqual({
        code: -32602,
        message: 'Unknown tool: beta__search',
      });
      expect((await beta.state()).calls.length).toBe(before);
      const warning = h.logs.find(
        (l) => l.route === '/never' && l.kind === 'tool' && l.name === 'echo' && l.level === 40,
      );
      expect(warning?.upstreams).toEqual(['everything', 'alpha', 'beta']);
      expect(h.logs.some((l) => l.route === '/never' && l.kind === 'tool' && l.name === 'search')).toBe(true);
    });

    it('the union over every page equals the union of the upstreams’ lists, which the gateway followed page by page', async () => {
      const c = await connect(url('/always'));
      const all = await toolNames(c);
      expect(new Set(all).size).toBe(all.length);
      expect(all).toHaveLength(E.length + ALPHA_VISIBLE.length + BETA_VISIBLE.length);
      // alpha lists 2 per page, beta 3: their last pages' tools are there.
      expect(all).toContain('alpha__alpha_two');
      expect(all).toContain('beta__beta_three');
      // A cursor page crosses an upstream boundary: some page holds tools of two upstreams.
      const { items } = await listAll((p: Page) => c.listTools(p), 'tools');
      const owners = items.map((t) => t.name.split('__')[0]);
      const boundaries = owners.flatMap((o, i) => (i > 0 && o !== owners[i - 1] ? [i] : []));
      expect(boundaries.some((i) => i % PAGE !== 0)).toBe(true);
    });

    it('lists are answered from the catalogue: listing does not reach the upstreams', async () => {
      const c = await connect(url('/conflict'));
      const [a0, b0] = await Promise.all([alpha.state(), beta.state()]);
      for (let i = 0; i < 3; i++) {
        await toolNames(c);
        await listAll((p: Page) => c.listPrompts(p), 'prompts');
        await listAll((p: Page) => c.listResources(p), 'resources');
        await listAll((p: Page) => c.listResourceTemplates(p), 'resourceTemplates');
      }
      const [a1, b1] = await Promise.all([alpha.state(), beta.state()]);
      for (const m of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
        expect(a1.requests[m], m).toBe(a0.requests[m]);
        expect(b1.requests[m], m).toBe(b0.requests[m]);
      }
    });
  });

  describe('cursors', () => {
    it('a tampered cursor, an upstream’s cursor, or another list’s cursor → -32602', async () => {
      const c = await connect(url('/conflict'));
      const first = await c.listTools();
      const cursor = first.nextCursor!;
      expect(cursor).toBeTypeOf('string');
      const tampered = `${cursor.slice(0, 2)}${cursor[2] === 'A' ? 'B' : 'A'}${cursor.slice(3)}`;
      for (const bad of [tampered, `${cursor}x`, 'tools:2', 'garbage']) {
        const e = await rpcError(c.listTools({ cursor: bad }));
        expect(e.code, bad).toBe(-32602);
        expect(e.message).toContain('cursor');
      }
      const promptsCursor = (await c.listPrompts()).nextCursor;
      expect(promptsCursor).toBeTypeOf('string');
      expect((await rpcError(c.listTools({ cursor: promptsCursor! }))).code).toBe(-32602);
      expect((await rpcError(c.listPrompts({ cursor }))).code).toBe(-32602);
      // The genuine cursor still works.
      expect((await c.listTools({ cursor })).tools).toHaveLength(PAGE);
    });
    // Regression (was a bug in src/catalog/cursor.ts CursorState / src/gateway/router.ts Router#page): a cursor carries only the
    // kind of list and an offset, so a cursor minted by another route (same gateway key) is accepted and
    // silently pages that offset of this route's list (here: a page of /always's tools continues /solo's,
    // which is shorter, and answers an empty, final page). Expected: -32602, like any foreign cursor (the
    // route belongs in the signed state).
    it('a cursor of another route → -32602', async () => {
      const always = await connect(url('/always'));
      let cursor = (await always.listTools()).nextCursor;
      for (let i = 0; i < 3 && cursor; i++) cursor = (await always.listTools({ cursor })).nextCursor;
      expect(cursor).toBeTypeOf('string');
      const solo = await connect(url('/solo'));
      expect((await rpcError(solo.listTools({ cursor: cursor! }))).code).toBe(-32602);
    });
  });

  describe('filters and overrides', () => {
    it('route include/exclude by <upstream>:<tool> glob and upstream include/exclude by its own names', async () => {
      const c = await connect(url('/filtered'));
      const names = await toolNames(c);
      // beta:s* leaves only beta's search, which collides with alpha's; alpha's echo no longer collides.
      expect(names).toEqual(['echo', 'alpha__search', 'alpha_one', 'alpha_two', LONG, 'beta__search']);
      const before = [(await alpha.state()).calls.length, (await beta.state()).calls.length];
      for (const hidden of ['drop_me', 'secret_key', 'beta_one', 'beta__echo', 'hidden_tool', 'nope']) {
        expect(await rpcError(c.callTool({ name: hidden, arguments: {} }))).toEqual({
          code: -32602,
          message: `Unknown tool: ${hidden}`,
        });
      }
      // Neither upstream was contacted.
      expect([(await alpha.state()).calls.length, (await beta.state()).calls.length]).toEqual(before);
      expect(textOf(await c.callTool({ name: 'echo', arguments: { m: 1 } }))).toBe('alpha:echo:{"m":1}');
    });

    it('upstream curation applies on every route; hidden tools are unknown everywhere', async () => {
      for (const path of ['/conflict', '/never', '/always', '/solo']) {
        const c = await connect(url(path));
        const names = await toolNames(c);
        expect(
          names.some((n) => n.includes('secret_key') || n.includes('hidden_tool')),
          path,
        ).toBe(false);
        const e = await rpcError(
          c.callTool({ name: path === '/always' ? 'alpha__secret_key' : 'secret_key' }),
        );
        expect(e.code).toBe(-32602);
      }
    });

    it('overrides replace the description and title clients see, under every exposed name', async () => {
      for (const [path, name] of [
        ['/conflict', 'alpha__search'],
        ['/never', 'search'],
        ['/always', 'alpha__search'],
        ['/solo', 'search'],
      ] as const) {
        const c = await connect(url(path));
        const tools = (await listAll((p: Page) => c.listTools(p), 'tools')).items;
        expect(
          tools.find((t) => t.name === name),
          path,
        ).toMatchObject({
          description: 'Alpha search (curated)',
          title: 'Alpha Search',
        });
        if (path === '/conflict')
          expect(tools.find((t) => t.name === 'beta__search')?.description).toBe("beta's search");
      }
    });
  });

  describe('resources and templates', () => {
    it('a URI two upstreams give is listed as gatehouse://<upstream>/<uri> for both; reads map back', async () => {
      const c = await connect(url('/conflict'));
      const { items, pages } = await listAll((p: Page) => c.listResources(p), 'resources');
      expect(pages.every((n) => n <= PAGE)).toBe(true);
      const uris = items.map((r) => r.uri);
      expect(uris).toEqual(
        expect.arrayContaining([
          'gatehouse://alpha/file:///shared.txt',
          'gatehouse://alpha/alpha://doc/1',
          'gatehouse://alpha/alpha://doc/2',
          'gatehouse://beta/file:///shared.txt',
          'gatehouse://beta/beta://doc/1',
        ]),
      );
      expect(uris).not.toContain('file:///shared.txt');
      // server-everything's URIs collide with nobody's: unchanged.
      const demo = uris.filter((u) => u.startsWith('demo://'));
      expect(demo.length).toBeGreaterThan(0);
      expect(uris.filter((u) => u.startsWith('gatehouse://everything/'))).toEqual([]);

      for (const up of ['alpha', 'beta']) {
        const read = await c.readResource({ uri: `gatehouse://${up}/file:///shared.txt` });
        expect(read.contents[0]).toMatchObject({
          uri: `gatehouse://${up}/file:///shared.txt`,
          text: `${up}:file:///shared.txt`,
        });
      }
      expect((await alpha.state()).reads).toContain('file:///shared.txt');
      const doc = await c.readResource({ uri: demo[0]! });
      expect(doc.contents[0]?.uri).toBe(demo[0]);
      // The gatehouse:// form is accepted for any upstream, wrapped or not.
      const viaWrapped = await c.readResource({ uri: `gatehouse://everything/${demo[0]}` });
      expect(viaWrapped.contents[0]).toEqual({ ...doc.contents[0] });
    });

    it('templates: listed wrapped when their upstream is; a URI matching one is read from its owner', async () => {
      const c = await connect(url('/conflict'));
      const { items } = await listAll((p: Page) => c.listResourceTemplates(p), 'resourceTemplates');
      const templates = items.map((t) => t.uriTemplate);
      expect(templates).toEqual(
        expect.arrayContaining([
          'demo://resource/dynamic/text/{resourceId}',
          'gatehouse://alpha/alpha://item/{id}',
          'gatehouse://beta/beta://item/{id}',
        ]),
      );
      const item = await c.readResource({ uri: 'gatehouse://beta/beta://item/42' });
      expect(item.contents[0]).toMatchObject({
        uri: 'gatehouse://beta/beta://item/42',
        text: 'beta:beta://item/42',
      });
      const dynamic = await c.readResource({ uri: 'demo://resource/dynamic/text/1' });
      expect(dynamic.contents[0]?.uri).toBe('demo://resource/dynamic/text/1');
      expect((await rpcError(c.readResource({ uri: 'nowhere://x' }))).code).toBe(-32602);
    });

    it('resources.prefix always wraps every upstream’s URIs', async () => {
      const c = await connect(url('/always'));
      const uris = (await listAll((p: Page) => c.listResources(p), 'resources')).items.map((r) => r.uri);
      expect(uris.every((u) => u.startsWith('gatehouse://'))).toBe(true);
      const demo = uris.find((u) => u.startsWith('gatehouse://everything/demo://'))!;
      const read = await c.readResource({ uri: demo });
      expect(read.contents[0]?.uri).toBe(demo);
    });

    it('subscribe/unsubscribe reach the owner with its own URI; its updates come back with the listed URI', async () => {
      const c = await connect(url('/conflict'));
      const seen = record(c);
      const uri = 'gatehouse://alpha/file:///shared.txt';
      await c.subscribeResource({ uri });
      expect((await alpha.state()).subscriptions).toContain('sub:file:///shared.txt');
      // The upstream's GET stream to the gateway may open a moment after the subscription.
      await waitFor(async () => {
        await alpha.resourceUpdated('file:///shared.txt');
        await new Promise((r) => setTimeout(r, 100));
        return seen.some((n) => n.method === 'notifications/resources/updated');
      }, 'notifications/resources/updated');
      const updated = seen.find((n) => n.method === 'notifications/resources/updated');
      expect(updated?.params?.uri).toBe(uri);
      await c.unsubscribeResource({ uri });
      expect((await alpha.state()).subscriptions).toContain('unsub:file:///shared.txt');
    });
  });

  describe('prompts and completion', () => {
    it('prompts/get by exposed name reaches the owner with its own name', async () => {
      const c = await connect(url('/always'));
      const prompts = (await listAll((p: Page) => c.listPrompts(p), 'prompts')).items.map((p) => p.name);
      expect(prompts).toEqual(
        expect.arrayContaining([
          'everything__args-prompt',
          'alpha__greet',
          'alpha__summarize',
          'beta__greet',
        ]),
      );
      const got = await c.getPrompt({ name: 'beta__greet', arguments: { who: 'Lyon' } });
      expect(JSON.stringify(got.messages)).toContain('beta:greet:{\\"who\\":\\"Lyon\\"}');
      const args = await c.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Lyon' } });
      expect(JSON.stringify(args.messages)).toContain('Lyon');
      expect((await rpcError(c.getPrompt({ name: 'greet' }))).code).toBe(-32602);
    });

    it('prompts prefix never: the first upstream keeps a colliding prompt', async () => {
      const c = await connect(url('/conflict'));
      const prompts = (await listAll((p: Page) => c.listPrompts(p), 'prompts')).items.map((p) => p.name);
      expect(prompts.filter((p) => p.includes('greet'))).toEqual(['greet']);
      const got = await c.getPrompt({ name: 'greet', arguments: {} });
      expect(JSON.stringify(got.messages)).toContain('alpha:greet:');
      expect((await rpcError(c.getPrompt({ name: 'beta__greet' }))).code).toBe(-32602);
    });

    it('completion/complete: ref/prompt by exposed name, ref/resource by exposed template', async () => {
      const c = await connect(url('/always'));
      const dept = await c.complete({
        ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
        argument: { name: 'department', value: 'E' },
      });
      expect(dept.completion.values).toContain('Engineering');
      const fromAlpha = await c.complete({
        ref: { type: 'ref/prompt', name: 'alpha__greet' },
        argument: { name: 'who', value: 'Ly' },
      });
      expect(fromAlpha.completion.values).toEqual(['alpha:ref/prompt:greet:Ly']);
      const tpl = await c.complete({
        ref: { type: 'ref/resource', uri: 'gatehouse://beta/beta://item/{id}' },
        argument: { name: 'id', value: '4' },
      });
      expect(tpl.completion.values).toEqual(['beta:ref/resource:beta://item/{id}:4']);
      expect(
        (
          await rpcError(
            c.complete({
              ref: { type: 'ref/prompt', name: 'no-such-prompt' },
              argument: { name: 'x', value: '' },
            }),
          )
        ).code,
      ).toBe(-32602);
    });
  });

  describe('logging/setLevel', () => {
    it('fans out to the open upstream sessions and applies to those opened later', async () => {
      const c = await connect(url('/conflict'));
      await c.callTool({ name: 'alpha__echo', arguments: {} }); // opens the alpha session only
      await c.setLoggingLevel('critical');
      await waitFor(async () => (await alpha.state()).levels.includes('critical'), 'alpha to get the level');
      expect((await beta.state()).levels).not.toContain('critical');
      await c.callTool({ name: 'beta__echo', arguments: {} }); // opens the beta session now
      expect((await beta.state()).levels).toContain('critical');
    });
  });

  describe('list_changed', () => {
    it('an upstream adds a tool: clients with a GET stream get tools/list_changed and then see it', async () => {
      const c = await connect(url('/conflict'));
      const seen = record(c);
      // A client declaring other capabilities has a catalogue of its own (upstreams may list per client).
      const sampler = await connect(url('/conflict'), { sampling: {} });
      const samplerSeen = record(sampler);
      expect(await toolNames(sampler)).not.toContain('fresh_tool');
      await alpha.addTool('fresh_tool');
      await waitFor(
        () => seen.some((n) => n.method === 'notifications/tools/list_changed'),
        'tools/list_changed',
      );
      expect(await toolNames(c)).toContain('fresh_tool');
      await waitFor(
        () => samplerSeen.some((n) => n.method === 'notifications/tools/list_changed'),
        'tools/list_changed (sampling profile)',
      );
      expect(await toolNames(sampler)).toContain('fresh_tool');
      expect(textOf(await c.callTool({ name: 'fresh_tool', arguments: {} }))).toBe('alpha:fresh_tool:{}');
      // Only the tools changed: no prompts/list_changed.
      expect(seen.some((n) => n.method === 'notifications/prompts/list_changed')).toBe(false);

      // Now alpha offers a name beta has too: both become prefixed.
      seen.length = 0;
      await alpha.addTool('beta_one');
      await waitFor(
        () => seen.some((n) => n.method === 'notifications/tools/list_changed'),
        'tools/list_changed',
      );
      const names = await toolNames(c);
      expect(names).toEqual(expect.arrayContaining(['alpha__beta_one', 'beta__beta_one', 'fresh_tool']));
      expect(names).not.toContain('beta_one');
      expect(textOf(await c.callTool({ name: 'beta__beta_one', arguments: {} }))).toBe('beta:beta_one:{}');
      expect(textOf(await c.callTool({ name: 'alpha__beta_one', arguments: {} }))).toBe('alpha:beta_one:{}');

      seen.length = 0;
      await alpha.removeTool('fresh_tool');
      await alpha.removeTool('beta_one');
      await waitFor(
        () => seen.some((n) => n.method === 'notifications/tools/list_changed'),
        'tools/list_changed',
      );
      await waitFor(async () => (await toolNames(c)).includes('beta_one'), 'beta_one bare again');
      const after = await toolNames(c);
      expect(after).not.toContain('fresh_tool');
      expect(after).not.toContain('alpha__beta_one');
      expect((await rpcError(c.callTool({ name: 'fresh_tool', arguments: {} }))).code).toBe(-32602);
    });

    it('a change the client’s view does not show sends no list_changed', async () => {
      const c = await connect(url('/conflict'));
      const seen = record(c);
      await toolNames(c);
      const lists = (await beta.state()).requests['tools/list'] ?? 0;
      await beta.addTool('invisible'); // hidden by beta's own include list
      await waitFor(
        async () => ((await beta.state()).requests['tools/list'] ?? 0) > lists,
        'the gateway to re-list beta',
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(seen.filter((n) => n.method === 'notifications/tools/list_changed')).toEqual([]);
      await beta.removeTool('invisible');
    });
  });

  describe('collision warnings', () => {
    // Regression (was a bug in src/catalog/catalog.ts Catalog#build): the warning for a collision is chosen by the route's
    // *tools* prefix mode for every kind: with `prompts: { prefix: never }` and tools on-conflict (route
    // /conflict), beta's `greet` prompt is hidden without any warning; with `tools: { prefix: never }` and
    // prompts on-conflict (route /never), a warning claims only the first `greet` is exposed while both are
    // (alpha__greet, beta__greet). Expected: the prompt warning follows `route.prompts.prefix`.
    it('a prompt hidden by prompts prefix never is warned about; prompts prefixed on-conflict are not', async () => {
      await connect(url('/conflict'));
      await connect(url('/never'));
      const promptWarnings = (route: string) =>
        h.logs.filter((l) => l.route === route && l.kind === 'prompt' && l.name === 'greet');
      expect(promptWarnings('/conflict').length).toBeGreaterThan(0);
      expect(promptWarnings('/never')).toEqual([]);
    });
  });
});
