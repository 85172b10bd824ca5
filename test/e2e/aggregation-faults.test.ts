// Failure isolation of an aggregating route: one upstream hangs, dies and comes back, or answers garbage,
// and the others' tools keep working and stay listed, while the failing one's calls get errors naming it.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type Notification, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChildFixtureHandle,
  type FixtureHandle,
  spawnFixture,
  startFixture,
} from '../fixtures/fixture-server.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { waitFor as pollFor, rpcError, textOf } from '../helpers/sdk.ts';

const clients: Client[] = [];

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'faults-test', version: '1.0.0' }, { capabilities: {} });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  clients.push(client);
  return client;
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
});

async function toolNames(c: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await c.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  return names;
}

/** The shared `waitFor`, polling every 20 ms. */
function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  return pollFor(cond, what, timeoutMs, 20);
}

function listChanges(c: Client): Notification[] {
  const seen: Notification[] = [];
  c.setNotificationHandler(ToolListChangedNotificationSchema, (n) => void seen.push(n));
  return seen;
}

/** Waits until nothing is in flight to `upstream` (calls and the catalogue's own requests). */
async function idle(gw: RunningGateway, upstream: string): Promise<void> {
  await waitFor(async () => {
    const ready = (await (await fetch(`${gw.base}/readyz`)).json()) as {
      upstreams: Record<string, { inFlight: number }>;
    };
    return ready.upstreams[upstream]?.inFlight === 0;
  }, `${upstream} to have nothing in flight`);
}

/** Runs `total` tasks with at most `concurrency` in flight. */
async function pool<T>(total: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(total);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

describe('a hung upstream', () => {
  let one: FixtureHandle;
  let two: FixtureHandle;
  let sloth: FixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    [one, two, sloth] = await Promise.all([
      startFixture({ name: 'one', tools: ['echo', 'one_work'] }),
      startFixture({ name: 'two', tools: ['echo', 'two_work'] }),
      startFixture({ name: 'sloth', tools: ['echo', 'hang', 'sloth_ok'], hangTool: 'hang' }),
    ]);
    gw = await startGateway(`
upstreams:
  one: { type: streamable-http, url: "${one.url}" }
  two: { type: streamable-http, url: "${two.url}" }
  sloth: { type: streamable-http, url: "${sloth.url}", request_timeout: 1s, max_concurrency: 4 }
routes:
  - path: /mcp
    upstreams: [one, two, sloth]
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.allSettled([one?.close(), two?.close(), sloth?.close()]);
  });

  it('its calls time out with -32003 naming it, while 200 concurrent calls to the others all succeed', async () => {
    const c = await connect(`${gw.base}/mcp`);
    const listsBefore = (await sloth.state()).requests['tools/list'] ?? 0;
    const t0 = Date.now();
    const hung = [0, 1].map(async () => {
      const e = await rpcError(c.callTool({ name: 'hang', arguments: {} }));
      return { ...e, ms: Date.now() - t0 };
    });
    const names = ['one__echo', 'two__echo', 'one_work', 'two_work'];
    const results = await pool(200, 8, async (i) => {
      const name = names[i % names.length]!;
      try {
        const text = textOf(await c.callTool({ name, arguments: { i } }));
        const owner = name.startsWith('one') ? 'one' : 'two';
        const tool = name.includes('__') ? 'echo' : name;
        return text === `${owner}:${tool}:{"i":${i}}` ? 'ok' : `wrong answer: ${text}`;
      } catch (err) {
        return `error: ${(err as Error).message}`;
      }
    });
    expect(results.filter((r) => r !== 'ok')).toEqual([]);
    for (const e of await Promise.all(hung)) {
      expect(e.code).toBe(-32003);
      expect(e.message).toContain('upstream "sloth"');
      expect(e.ms).toBeGreaterThanOrEqual(900);
      expect(e.ms).toBeLessThan(5_000);
    }
    // A timed-out upstream is checked again by the catalogue (which also takes its slots for a moment).
    await waitFor(
      async () => ((await sloth.state()).requests['tools/list'] ?? 0) > listsBefore,
      'the catalogue to re-list sloth after its timeouts',
    );
    await idle(gw, 'sloth');
    // The hung upstream's other tools still answer, and its tools are still listed.
    expect(textOf(await c.callTool({ name: 'sloth_ok', arguments: {} }))).toBe('sloth:sloth_ok:{}');
    expect(await toolNames(c)).toEqual(expect.arrayContaining(['hang', 'sloth_ok', 'sloth__echo']));
    const [s1, s2] = await Promise.all([one.state(), two.state()]);
    expect(s1.calls.length + s2.calls.length).toBe(200);
  });

  it('beyond its max_concurrency, calls fail fast with -32006 naming it', async () => {
    const c = await connect(`${gw.base}/mcp`);
    await idle(gw, 'sloth');
    const hangs = () => sloth.state().then((st) => st.calls.filter((x) => x.tool === 'hang').length);
    const before = await hangs();
    const hung = [0, 1, 2, 3].map(() => rpcError(c.callTool({ name: 'hang', arguments: {} })));
    await waitFor(async () => (await hangs()) === before + 4, 'four hung calls in flight');
    const t = Date.now();
    const excess = await rpcError(c.callTool({ name: 'sloth_ok', arguments: {} }));
    expect(Date.now() - t).toBeLessThan(500);
    expect(excess.code).toBe(-32006);
    expect(excess.message).toContain('upstream "sloth"');
    // The others are not limited by sloth's limit.
    expect(textOf(await c.callTool({ name: 'one_work', arguments: {} }))).toBe('one:one_work:{}');
    for (const e of await Promise.all(hung)) expect(e.code).toBe(-32003);
  });
});

describe('max_concurrency and the catalogue', () => {
  let busy: FixtureHandle;
  let other: FixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    [busy, other] = await Promise.all([
      startFixture({ name: 'busy', tools: ['hang', 'busy_ok'], prompts: ['p'], hangTool: 'hang' }),
      startFixture({ name: 'other', tools: ['other_ok'] }),
    ]);
    gw = await startGateway(`
upstreams:
  busy: { type: streamable-http, url: "${busy.url}", request_timeout: 2s, max_concurrency: 4 }
  small: { type: streamable-http, url: "${busy.url}", max_concurrency: 2 }
  other: { type: streamable-http, url: "${other.url}" }
routes:
  - path: /mcp
    upstreams: [busy, other]
  - path: /small
    upstreams: [small, other]
health: { interval: 100ms, grace_period: 300ms }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.allSettled([busy?.close(), other?.close()]);
  });

  // Regression (was a bug in src/catalog/upstream-catalog.ts UpstreamCatalog#refreshOnce): the catalogue lists tools, prompts,
  // resources and templates concurrently through the upstream's own max_concurrency limiter, which fails
  // fast: with max_concurrency below the number of lists (here 2 < 4), every refresh fails with -32006,
  // the upstream is marked down ("already has 2 requests in flight") and its tools are never listed.
  // Expected: the catalogue's refresh is not refused by the limit it shares with calls (lists one at a time,
  // waits for a slot, or does not count against max_concurrency), so `small`'s tools are listed.
  it('an upstream whose max_concurrency is below its number of lists is still listed', async () => {
    const c = await connect(`${gw.base}/small`);
    expect(await toolNames(c)).toEqual(expect.arrayContaining(['busy_ok', 'other_ok']));
  });

  // Regression (was a bug in src/catalog/upstream-catalog.ts UpstreamCatalog#refreshOnce, via the shared limiter): while calls
  // hold all of a healthy upstream's max_concurrency slots, the periodic refresh is refused (-32006), the
  // catalogue marks the upstream down and, after grace_period, removes its tools (clients get
  // tools/list_changed) although it answers fine. Expected: a busy upstream stays listed and up.
  it('a healthy upstream whose slots are all taken by slow calls stays listed', async () => {
    const c = await connect(`${gw.base}/mcp`);
    const seen = listChanges(c);
    expect(await toolNames(c)).toEqual(['hang', 'busy_ok', 'other_ok']);
    const hung = [0, 1, 2, 3].map(() => c.callTool({ name: 'hang', arguments: {} }).catch(() => undefined));
    try {
      await new Promise((r) => setTimeout(r, 1_000)); // > interval + grace_period
      expect(seen).toEqual([]);
      expect(await toolNames(c)).toEqual(['hang', 'busy_ok', 'other_ok']);
    } finally {
      await Promise.all(hung);
    }
  });
});

describe('an upstream killed and restarted on the same port', () => {
  let steady: FixtureHandle;
  let phoenix: ChildFixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    [steady, phoenix] = await Promise.all([
      startFixture({ name: 'steady', tools: ['echo', 'steady_tool'] }),
      spawnFixture({ name: 'phoenix', tools: ['echo', 'rise'] }),
    ]);
    gw = await startGateway(`
upstreams:
  steady: { type: streamable-http, url: "${steady.url}" }
  phoenix: { type: streamable-http, url: "${phoenix.url}", connect_timeout: 500ms, request_timeout: 2s }
routes:
  - path: /mcp
    upstreams: [steady, phoenix]
health: { interval: 200ms, grace_period: 1s }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.allSettled([steady?.close(), phoenix?.close()]);
  });

  it('stays listed for the grace period (calls → -32001 naming it), then disappears, then comes back', async () => {
    const c = await connect(`${gw.base}/mcp`);
    const seen = listChanges(c);
    expect(await toolNames(c)).toEqual(['steady__echo', 'steady_tool', 'phoenix__echo', 'rise']);
    expect(textOf(await c.callTool({ name: 'rise', arguments: {} }))).toBe('phoenix:rise:{}');

    await phoenix.kill();
    const killedAt = Date.now();
    // Within the grace period: still listed, calls fail naming the upstream.
    expect(await toolNames(c)).toContain('rise');
    const down = await rpcError(c.callTool({ name: 'rise', arguments: {} }));
    expect(down.code).toBe(-32001);
    expect(down.message).toContain('upstream "phoenix"');
    expect(textOf(await c.callTool({ name: 'steady_tool', arguments: {} }))).toBe('steady:steady_tool:{}');
    expect(Date.now() - killedAt).toBeLessThan(900);

    // After it: gone, with tools/list_changed on the client's GET stream; steady's echo no longer collides.
    await waitFor(() => seen.length > 0, 'tools/list_changed after the grace period', 5_000);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(950);
    expect(await toolNames(c)).toEqual(['echo', 'steady_tool']);
    expect(await rpcError(c.callTool({ name: 'rise', arguments: {} }))).toEqual({
      code: -32602,
      message: 'Unknown tool: rise',
    });
    expect(textOf(await c.callTool({ name: 'echo', arguments: { x: 1 } }))).toBe('steady:echo:{"x":1}');

    // Back on the same port: listed again, with tools/list_changed.
    seen.length = 0;
    await phoenix.restart();
    await waitFor(() => seen.length > 0, 'tools/list_changed after the restart', 5_000);
    expect(await toolNames(c)).toEqual(['steady__echo', 'steady_tool', 'phoenix__echo', 'rise']);
    // The client's old upstream session died with the process: at most one call may report that.
    let answer: string | undefined;
    for (let attempt = 0; attempt < 2 && answer === undefined; attempt++) {
      try {
        answer = textOf(await c.callTool({ name: 'rise', arguments: {} }));
      } catch (err) {
        const e = err as { code?: number; message: string };
        expect(e.code).toBe(-32001);
        expect(e.message).toContain('upstream "phoenix"');
      }
    }
    expect(answer).toBe('phoenix:rise:{}');
  });
});

describe('an upstream answering malformed JSON-RPC', () => {
  let good: FixtureHandle;
  let garbled: FixtureHandle;
  let liar: FixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    [good, garbled, liar] = await Promise.all([
      startFixture({ name: 'good', tools: ['echo', 'good_tool'] }),
      startFixture({
        name: 'garbled',
        tools: ['echo', 'garbled_tool'],
        faults: { malformedToolsList: true },
      }),
      startFixture({
        name: 'liar',
        tools: ['liar_ok', 'bad_call'],
        faults: { malformedTools: ['bad_call'] },
      }),
    ]);
    gw = await startGateway(`
upstreams:
  good: { type: streamable-http, url: "${good.url}" }
  garbled: { type: streamable-http, url: "${garbled.url}" }
  liar: { type: streamable-http, url: "${liar.url}" }
routes:
  - path: /mcp
    upstreams: [good, garbled, liar]
  - path: /garbled
    upstreams: [garbled]
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.allSettled([good?.close(), garbled?.close(), liar?.close()]);
  });

  it('for tools/list: the others stay listed; its tools are unknown; its health and its own route name it', async () => {
    const c = await connect(`${gw.base}/mcp`);
    // garbled is not listed: good's echo does not collide with anything.
    expect(await toolNames(c)).toEqual(['echo', 'good_tool', 'liar_ok', 'bad_call']);
    expect(textOf(await c.callTool({ name: 'echo', arguments: {} }))).toBe('good:echo:{}');
    expect((await rpcError(c.callTool({ name: 'garbled_tool', arguments: {} }))).code).toBe(-32602);
    expect((await garbled.state()).calls).toEqual([]);

    const ready = (await (await fetch(`${gw.base}/readyz`)).json()) as {
      upstreams: Record<string, { status: string; lastError?: string }>;
    };
    expect(ready.upstreams.garbled?.status).toBe('down');
    expect(ready.upstreams.garbled?.lastError).toContain('upstream "garbled"');
    expect(ready.upstreams.good?.status).toBe('up');

    // A route with only that upstream cannot initialize, and says why.
    const res = await fetch(`${gw.base}/garbled`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      }),
    });
    const body = (await res.json()) as { error?: { code: number; message: string } };
    expect(body.error?.code).toBe(-32001);
    expect(body.error?.message).toContain('upstream "garbled"');
    expect(body.error?.message).toContain('malformed');
  });

  it('for a tools/call: -32004 naming it; the gateway and the upstream’s other tools stay healthy', async () => {
    const c = await connect(`${gw.base}/mcp`);
    const bad = await rpcError(c.callTool({ name: 'bad_call', arguments: {} }));
    expect(bad.code).toBe(-32004);
    expect(bad.message).toContain('upstream "liar"');
    expect(textOf(await c.callTool({ name: 'liar_ok', arguments: {} }))).toBe('liar:liar_ok:{}');
    expect(textOf(await c.callTool({ name: 'good_tool', arguments: {} }))).toBe('good:good_tool:{}');
    expect(await toolNames(c)).toContain('bad_call');
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    const ready = (await (await fetch(`${gw.base}/readyz`)).json()) as {
      upstreams: Record<string, { status: string }>;
    };
    expect(ready.upstreams.liar?.status).toBe('up');
  });
});
