// stdio upstreams end to end: the official SDK Client through the gateway to processes the gateway
// launches — server-everything in stdio mode and our own fixture (test/fixtures/stdio-server.ts) — in
// both modes (one process per session, one shared). Processes are counted by a random marker in their
// argv (/proc), so a leak is seen whatever the gateway thinks it runs.

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { textOf } from '../helpers/sdk.ts';

type Msg = Record<string, unknown>;
type Mode = 'per-session' | 'shared';

const FIXTURE = fileURLToPath(new URL('../fixtures/stdio-server.ts', import.meta.url));
const EVERYTHING = join(
  dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist/index.js',
);
const MODES: Mode[] = ['per-session', 'shared'];

/** A gateway in-process on a random port, its JSON log lines captured (debug level). */
interface Running {
  gateway: Gateway;
  base: string;
  url: string;
  logs: Msg[];
  close(): Promise<void>;
}

async function start(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const config = parseConfig(yaml, 'stdio.yaml', env);
  config.audit.enabled = false; // no audit database in the working tree (audit*.test.ts test it)
  config.listen.port = 0;
  const logs: Msg[] = [];
  const logger = createLogger('debug', {
    write(line: string) {
      logs.push(JSON.parse(line) as Msg);
    },
  });
  const gateway = await createGateway(
    { config, file: 'stdio.yaml', baseDir: process.cwd(), env },
    { logger },
  );
  const base = (await gateway.start()).replace('localhost', '127.0.0.1');
  return { gateway, base, url: `${base}/mcp`, logs, close: () => gateway.stop() };
}

function marker(): string {
  return `--gh-test-${randomBytes(6).toString('hex')}`;
}

/** One stdio upstream `fx` on route /mcp. */
function stdioYaml(o: {
  args: string[];
  mode: Mode;
  mark: string;
  extra?: string;
  command?: string;
}): string {
  return `
upstreams:
  fx:
    type: stdio
    command: ${JSON.stringify(o.command ?? process.execPath)}
    args: ${JSON.stringify([...o.args, o.mark])}
    mode: ${o.mode}
${(o.extra ?? '')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => `    ${l}`)
  .join('\n')}
routes:
  - path: /mcp
    upstreams: [fx]
    tools: { prefix: never }
health: { interval: 0 }
`;
}

/** Live processes whose argv contains `mark` (zombies have an empty cmdline and do not count). */
function countProcesses(mark: string): number {
  let n = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(mark)) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

interface Connected {
  client: Client;
  transport: StreamableHTTPClientTransport;
  /** Every message the client sent, and every one it received. */
  sent: JSONRPCMessage[];
  received: JSONRPCMessage[];
  /** DELETE (ends the gateway session), then close. */
  end(): Promise<void>;
}

async function connect(url: string, capabilities: Record<string, object> = {}): Promise<Connected> {
  const client = new Client({ name: 'stdio-test', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const sent: JSONRPCMessage[] = [];
  const received: JSONRPCMessage[] = [];
  const send = transport.send.bind(transport);
  transport.send = (m, opts) => {
    if (Array.isArray(m)) sent.push(...m);
    else sent.push(m);
    return send(m, opts);
  };
  await client.connect(transport);
  const onmessage = transport.onmessage;
  transport.onmessage = (m: JSONRPCMessage) => {
    received.push(m);
    onmessage?.(m);
  };
  return {
    client,
    transport,
    sent,
    received,
    async end() {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  const outcome = await p.then(
    (v) => v,
    (e: unknown) => e,
  );
  if (!(outcome instanceof McpError))
    throw new Error(`expected a JSON-RPC error, got ${JSON.stringify(outcome)}`);
  return outcome;
}

/** The stderr lines the gateway logged for upstream `fx`. */
function stderrLines(logs: Msg[], upstream = 'fx'): string[] {
  return logs.filter((l) => l.upstream === upstream && l.stream === 'stderr').map((l) => String(l.msg));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** After the gateway stopped: every process it launched is gone within a few seconds (hooks cannot poll). */
async function noProcessLeft(mark: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (countProcesses(mark) > 0) {
    if (Date.now() > deadline)
      throw new Error(`${countProcesses(mark)} process(es) marked ${mark} outlived the gateway's stop`);
    await sleep(50);
  }
}

describe.each(MODES)('server-everything over stdio (%s)', (mode) => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(stdioYaml({ args: [EVERYTHING, 'stdio'], mode, mark }));
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it('initializes with its identity, lists its tools and calls them', async () => {
    const c = await connect(gw.url);
    try {
      expect(c.client.getServerVersion()?.name).toBe('mcp-servers/everything');
      expect(c.client.getServerCapabilities()?.tools).toBeDefined();
      const names = (await c.client.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(['echo', 'get-sum', 'trigger-long-running-operation']));
      expect(await c.client.callTool({ name: 'echo', arguments: { message: 'héllo ✓' } })).toEqual({
        content: [{ type: 'text', text: 'Echo: héllo ✓' }],
      });
      expect(textOf(await c.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }))).toContain(
        '42',
      );
    } finally {
      await c.end();
    }
  });

  it('relays every progress step of a long call', async () => {
    const c = await connect(gw.url);
    try {
      const progress: number[] = [];
      const r = await c.client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      );
      expect(progress).toEqual([1, 2, 3, 4]);
      expect(textOf(r)).toContain('completed');
    } finally {
      await c.end();
    }
  });

  it('relays sampling, elicitation and roots requests to the client and its answers back', async () => {
    const c = await connect(gw.url, { sampling: {}, elicitation: {}, roots: { listChanged: true } });
    try {
      c.client.setRequestHandler(CreateMessageRequestSchema, async () => ({
        model: 'stdio-test-model',
        role: 'assistant',
        content: { type: 'text', text: 'sampled by the client' },
      }));
      c.client.setRequestHandler(ElicitRequestSchema, async () => ({
        action: 'accept',
        content: { name: 'Ada Lovelace' },
      }));
      c.client.setRequestHandler(ListRootsRequestSchema, async () => ({
        roots: [{ uri: 'file:///tmp/gatehouse-stdio-root', name: 'root' }],
      }));
      const sampled = await c.client.callTool({
        name: 'trigger-sampling-request',
        arguments: { prompt: 'hi' },
      });
      expect(textOf(sampled)).toContain('stdio-test-model');
      expect(textOf(sampled)).toContain('sampled by the client');
      const elicited = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(textOf(elicited)).toContain('Ada Lovelace');
      const roots = await c.client.callTool({ name: 'get-roots-list', arguments: {} });
      expect(textOf(roots)).toContain('gatehouse-stdio-root');
    } finally {
      await c.end();
    }
  });

  it('cancels a call when the client aborts it, and the session goes on', async () => {
    const c = await connect(gw.url);
    try {
      const controller = new AbortController();
      let progressed!: () => void;
      const first = new Promise<void>((r) => {
        progressed = r;
      });
      const call = c.client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 10, steps: 20 } },
        undefined,
        { signal: controller.signal, onprogress: () => progressed() },
      );
      await first;
      controller.abort('not needed any more');
      await expect(call).rejects.toThrow();
      const cancel = c.sent.find((m) => 'method' in m && m.method === 'notifications/cancelled');
      expect(cancel).toBeDefined();
      expect(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'after' } }))).toBe(
        'Echo: after',
      );
    } finally {
      await c.end();
    }
  });

  it('passes logging/setLevel on to the process', async () => {
    const c = await connect(gw.url);
    try {
      const logs: unknown[] = [];
      c.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        logs.push(n.params);
      });
      expect(await c.client.setLoggingLevel('debug')).toEqual({});
      const started = await c.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
      expect(textOf(started)).toContain('Started simulated');
      // Log messages sent outside any request go to the client's GET stream in per-session mode; a shared
      // process's have no single owner, and the gateway drops them (stdio.ts SharedHandle.onServerMessage).
      if (mode === 'per-session')
        await expect.poll(() => logs.length, { timeout: 10_000 }).toBeGreaterThan(0);
      await c.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    } finally {
      await c.end();
    }
  });
});

describe.each(MODES)('the fixture over stdio (%s)', (mode) => {
  const mark = marker();
  const GATEWAY_ONLY = 'GH_STDIO_TEST_GATEWAY_ONLY';
  let gw: Running;
  let saved: string | undefined;

  beforeAll(async () => {
    // A variable of the gateway's own environment that the child must not see.
    saved = process.env[GATEWAY_ONLY];
    process.env[GATEWAY_ONLY] = 'gateway-private-value';
    gw = await start(
      stdioYaml({
        args: [FIXTURE],
        mode,
        mark,
        extra: `env: { FOO: bar, INTERP: "pre-\${GH_STDIO_TEST_INTERP}-post", FROM_REF: { env: GH_STDIO_TEST_INTERP } }`,
      }),
      { ...process.env, GH_STDIO_TEST_INTERP: 'interpolated ✓' },
    );
  });
  afterAll(async () => {
    await gw?.close();
    if (saved === undefined) delete process.env[GATEWAY_ONLY];
    else process.env[GATEWAY_ONLY] = saved;
    await noProcessLeft(mark);
  });

  it("gives the child only the config's environment, with $VAR interpolation and { env } resolved", async () => {
    const c = await connect(gw.url);
    try {
      const env = JSON.parse(textOf(await c.client.callTool({ name: 'env', arguments: {} }))) as Msg;
      expect(env).toEqual({ FOO: 'bar', INTERP: 'pre-interpolated ✓-post', FROM_REF: 'interpolated ✓' });
      expect(env).not.toHaveProperty(GATEWAY_ONLY);
      expect(env).not.toHaveProperty('PATH');
    } finally {
      await c.end();
    }
  });

  it('logs the child’s stderr lines under the upstream’s name', async () => {
    const c = await connect(gw.url);
    try {
      await c.client.callTool({ name: 'echo', arguments: { text: 'x' } });
      await expect
        .poll(() => stderrLines(gw.logs).some((l) => l.includes(`started argv=${mark}`)), { timeout: 5_000 })
        .toBe(true);
      await expect
        .poll(() => stderrLines(gw.logs).some((l) => /call echo id=/.test(l)), { timeout: 5_000 })
        .toBe(true);
      const line = gw.logs.find((l) => l.stream === 'stderr' && String(l.msg).includes('call echo'));
      expect(line).toMatchObject({ upstream: 'fx', level: 30 });
    } finally {
      await c.end();
    }
  });

  it('relays the fixture’s sampling request to a client that declared sampling', async () => {
    const c = await connect(gw.url, { sampling: {} });
    try {
      c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
        model: 'fixture-model',
        role: 'assistant',
        content: { type: 'text', text: `answer to ${JSON.stringify(req.params.messages[0]?.content)}` },
      }));
      const r = await c.client.callTool({ name: 'sample', arguments: { prompt: 'ping' } });
      expect(r.isError).toBeUndefined();
      expect(textOf(r)).toContain('fixture-model');
      expect(textOf(r)).toContain('answer to');
    } finally {
      await c.end();
    }
  });

  it('refuses a sampling request for a client without the capability, to the upstream, without asking the client', async () => {
    const c = await connect(gw.url);
    try {
      const r = await c.client.callTool({ name: 'sample', arguments: { prompt: 'ping' } });
      expect(r.isError).toBe(true);
      expect(textOf(r)).toMatch(/sampling failed: -32601 .*did not declare the sampling capability/);
      expect(c.received.some((m) => 'method' in m && m.method === 'sampling/createMessage')).toBe(false);
    } finally {
      await c.end();
    }
  });

  it('forwards a cancellation to the process under the id the process knows the call by', async () => {
    const c = await connect(gw.url);
    try {
      const controller = new AbortController();
      let progressed!: () => void;
      const first = new Promise<void>((r) => {
        progressed = r;
      });
      const before = gw.logs.length;
      const call = c.client.callTool(
        { name: 'slow', arguments: { ms: 10_000, steps: 50, tag: 'to-cancel' } },
        undefined,
        { signal: controller.signal, onprogress: () => progressed() },
      );
      await first;
      controller.abort('changed my mind');
      await expect(call).rejects.toThrow();
      const fresh = () => stderrLines(gw.logs.slice(before));
      await expect.poll(() => fresh().some((l) => l.includes(' cancelled ')), { timeout: 5_000 }).toBe(true);
      const callId = /call slow id=(\S+)/.exec(fresh().find((l) => l.includes('call slow')) ?? '')?.[1];
      const cancelled = fresh().find((l) => l.includes(' cancelled '));
      expect(callId).toBeDefined();
      expect(cancelled).toContain(`requestId=${callId} reason="changed my mind"`);
      // The process's own record agrees: the cancellation names the id of the slow call it received.
      const seen = JSON.parse(textOf(await c.client.callTool({ name: 'received', arguments: {} }))) as {
        method: string;
        id?: unknown;
        params?: Msg;
      }[];
      const slow = seen.filter(
        (m) => m.method === 'tools/call' && (m.params?.arguments as Msg | undefined)?.tag === 'to-cancel',
      );
      expect(slow).toHaveLength(1);
      const cancels = seen.filter((m) => m.method === 'notifications/cancelled');
      expect(cancels.map((m) => m.params?.requestId)).toContain(slow[0]?.id);
      expect(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'after' } }))).toBe(
        'echo:after',
      );
    } finally {
      await c.end();
    }
  });
});

describe('shared mode: clients sharing one process', () => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(stdioYaml({ args: [FIXTURE], mode: 'shared', mark }));
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it('keeps the same request id and progress token of two clients apart', async () => {
    const a = await connect(gw.url);
    const b = await connect(gw.url);
    try {
      const progress = { a: [] as string[], b: [] as string[] };
      const [ra, rb] = await Promise.all([
        a.client.callTool({ name: 'slow', arguments: { ms: 600, steps: 3, tag: 'A' } }, undefined, {
          onprogress: (p) => progress.a.push(`${p.progress}:${p.message}`),
        }),
        b.client.callTool({ name: 'slow', arguments: { ms: 600, steps: 5, tag: 'B' } }, undefined, {
          onprogress: (p) => progress.b.push(`${p.progress}:${p.message}`),
        }),
      ]);
      // Both clients really used the same id and the same progress token.
      const callOf = (c: Connected) =>
        c.sent.find((m) => 'method' in m && m.method === 'tools/call') as {
          id: unknown;
          params: { _meta?: { progressToken?: unknown } };
        };
      expect(callOf(a).id).toBe(callOf(b).id);
      expect(callOf(a).params._meta?.progressToken).toBe(callOf(b).params._meta?.progressToken);
      expect(textOf(ra)).toBe('slow:A');
      expect(textOf(rb)).toBe('slow:B');
      expect(progress.a).toEqual(['1:A', '2:A', '3:A']);
      expect(progress.b).toEqual(['1:B', '2:B', '3:B', '4:B', '5:B']);
      expect(countProcesses(mark)).toBe(1);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it("cancels only the cancelling client's call when both use the same id", async () => {
    const a = await connect(gw.url);
    const b = await connect(gw.url);
    try {
      const before = gw.logs.length;
      const controller = new AbortController();
      let progressed!: () => void;
      const first = new Promise<void>((r) => {
        progressed = r;
      });
      const ca = a.client.callTool(
        { name: 'slow', arguments: { ms: 5_000, steps: 50, tag: 'A' } },
        undefined,
        {
          signal: controller.signal,
          onprogress: () => progressed(),
        },
      );
      const cb = b.client.callTool({ name: 'slow', arguments: { ms: 1_500, steps: 3, tag: 'B' } });
      await first;
      controller.abort('only A');
      await expect(ca).rejects.toThrow();
      expect(textOf(await cb)).toBe('slow:B');
      const cancelLines = () => stderrLines(gw.logs.slice(before)).filter((l) => l.includes(' cancelled '));
      await expect.poll(() => cancelLines().length, { timeout: 5_000 }).toBeGreaterThan(0);
      const cancels = cancelLines();
      expect(cancels).toHaveLength(1);
      expect(cancels[0]).toContain('reason="only A"');
    } finally {
      await a.end();
      await b.end();
    }
  });

  // Regression (was a bug in src/upstream/stdio.ts StdioUpstream#sharedSession / SharedHandle.onServerMessage): the shared
  // ChannelUpstreamSession never gets a server-message handler, so notifications/tools/list_changed from a
  // shared process is dropped in ChannelUpstreamSession#onMessage — neither the catalogue nor the router
  // (#inbound → catalog.refresh) sees it, and with health.interval 0 the new tool is never listed; expected:
  // the catalogue refreshes on the shared process's list_changed and clients see the new tool (and a
  // notifications/tools/list_changed on their GET stream).
  it('lists a tool the shared process added after it sent tools/list_changed', async () => {
    const c = await connect(gw.url);
    try {
      let told = 0;
      c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        told++;
      });
      const added = textOf(await c.client.callTool({ name: 'notify', arguments: {} })).replace('added:', '');
      await expect
        .poll(async () => (await c.client.listTools()).tools.map((t) => t.name), { timeout: 3_000 })
        .toContain(added);
      await expect.poll(() => told, { timeout: 3_000 }).toBeGreaterThan(0);
    } finally {
      await c.end();
    }
  });
});

describe('per-session mode: no process outlives its session', () => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(stdioYaml({ args: [FIXTURE], mode: 'per-session', mark }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('100 sessions opened and closed leave the process count where it was; stop leaves none', async () => {
    // The catalogue keeps a process of its own (listing for clients without capabilities): that is the baseline.
    const catalog = gw.gateway.catalog;
    await catalog.ready('/mcp', catalog.profileFor({}), 5_000);
    const baseline = countProcesses(mark);
    expect(baseline).toBeLessThanOrEqual(1);

    const SESSIONS = 100;
    const CONCURRENCY = 10;
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, countProcesses(mark));
    }, 20);
    let next = 0;
    const answers: string[] = [];
    const worker = async () => {
      while (next < SESSIONS) {
        const n = next++;
        const c = await connect(gw.url);
        try {
          answers.push(textOf(await c.client.callTool({ name: 'echo', arguments: { text: String(n) } })));
        } finally {
          await c.end();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      clearInterval(sampler);
    }
    expect(answers).toHaveLength(SESSIONS);
    expect(new Set(answers).size).toBe(SESSIONS);
    // Never more processes than sessions open at once (plus the catalogue's).
    expect(peak).toBeLessThanOrEqual(baseline + CONCURRENCY);
    expect(peak).toBeGreaterThan(baseline);
    await expect.poll(() => countProcesses(mark), { timeout: 5_000 }).toBe(baseline);

    await gw.close();
    await expect.poll(() => countProcesses(mark), { timeout: 5_000 }).toBe(0);
  }, 30_000);
});

describe('per-session mode: abandoned sessions and shutdown', () => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(
      `${stdioYaml({ args: [FIXTURE], mode: 'per-session', mark })}
sessions: { idle_timeout: 1s }
shutdown_timeout: 500ms
`,
    );
    const catalog = gw.gateway.catalog;
    await catalog.ready('/mcp', catalog.profileFor({}), 5_000);
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it("ends the process of a session the client left without DELETE, at the session's idle timeout", async () => {
    const baseline = countProcesses(mark);
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(gw.url)));
    for (const c of clients) await c.client.callTool({ name: 'echo', arguments: { text: 'x' } });
    expect(countProcesses(mark)).toBe(baseline + 5);
    await Promise.all(clients.map((c) => c.client.close())); // no DELETE
    await expect.poll(() => countProcesses(mark), { timeout: 6_000, interval: 100 }).toBe(baseline);
  });

  it('stops with calls in flight and leaves no process behind', async () => {
    const clients = await Promise.all(Array.from({ length: 3 }, () => connect(gw.url)));
    const calls = clients.map((c) =>
      c.client.callTool({ name: 'slow', arguments: { ms: 20_000, steps: 1 } }).catch((e: unknown) => e),
    );
    await expect.poll(() => countProcesses(mark), { timeout: 5_000 }).toBeGreaterThanOrEqual(3);
    await gw.close();
    await noProcessLeft(mark);
    for (const outcome of await Promise.all(calls)) expect(outcome).toBeInstanceOf(Error);
    await Promise.all(clients.map((c) => c.client.close()));
  });
});

describe.each(MODES)('a process that crashes mid-call (%s)', (mode) => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(stdioYaml({ args: [FIXTURE], mode, mark }));
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it('fails the call with -32001 naming the upstream', async () => {
    const c = await connect(gw.url);
    try {
      const pid = textOf(await c.client.callTool({ name: 'pid', arguments: {} }));
      const err = await rpcError(c.client.callTool({ name: 'crash', arguments: {} }));
      expect(err.code).toBe(-32001);
      expect(err.message).toContain('"fx"');
      expect(err.message).toContain('exited with code 3');
      // Eventually a new process answers (after the back-off, whatever the mode).
      await expect
        .poll(
          async () =>
            textOf(await c.client.callTool({ name: 'pid', arguments: {} }).catch(() => ({ content: [] }))),
          { timeout: 5_000, interval: 100 },
        )
        .toMatch(/^\d+$/);
      expect(textOf(await c.client.callTool({ name: 'pid', arguments: {} }))).not.toBe(pid);
    } finally {
      await c.end();
    }
  });

  if (mode === 'shared') {
    it('refuses calls while the back-off runs with a clear -32001, then restarts the process', async () => {
      await sleep(1_500); // let an earlier crash's back-off end
      const c = await connect(gw.url);
      try {
        const pid = textOf(await c.client.callTool({ name: 'pid', arguments: {} }));
        await rpcError(c.client.callTool({ name: 'crash', arguments: {} }));
        const err = await rpcError(c.client.callTool({ name: 'echo', arguments: { text: 'too soon' } }));
        expect(err.code).toBe(-32001);
        expect(err.message).toMatch(/upstream "fx" crashed .*restarting in \d+ ms/);
        const wait = Number(/restarting in (\d+) ms/.exec(err.message)?.[1]);
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(30_000);
        await sleep(wait + 100);
        expect(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'again' } }))).toBe(
          'echo:again',
        );
        expect(textOf(await c.client.callTool({ name: 'pid', arguments: {} }))).not.toBe(pid);
        expect(countProcesses(mark)).toBe(1);
      } finally {
        await c.end();
      }
    });
  } else {
    // Regression (was a bug in src/upstream/stdio.ts StdioUpstream#start): the crash back-off (#restartAt) is upstream-wide, so
    // in per-session mode one session's crash makes every new process of the upstream — this session's
    // replacement, other clients' first calls, the catalogue's probe — fail with "crashed …; restarting in
    // N ms" for the back-off; expected: per-session crashes are isolated ("isolated state and crashes",
    // docs/configuration.md), so the next call opens a new process at once and works.
    it('opens a new process for the next call at once', async () => {
      await sleep(1_500); // let an earlier crash's back-off end
      const c = await connect(gw.url);
      try {
        const pid = textOf(await c.client.callTool({ name: 'pid', arguments: {} }));
        await rpcError(c.client.callTool({ name: 'crash', arguments: {} }));
        const next = textOf(await c.client.callTool({ name: 'pid', arguments: {} }));
        expect(next).toMatch(/^\d+$/);
        expect(next).not.toBe(pid);
      } finally {
        await c.end();
      }
    });

    it("does not disturb another session's process", async () => {
      await sleep(1_500);
      const a = await connect(gw.url);
      const b = await connect(gw.url);
      try {
        const pidB = textOf(await b.client.callTool({ name: 'pid', arguments: {} }));
        await a.client.callTool({ name: 'pid', arguments: {} });
        await rpcError(a.client.callTool({ name: 'crash', arguments: {} }));
        expect(textOf(await b.client.callTool({ name: 'pid', arguments: {} }))).toBe(pidB);
      } finally {
        await a.end();
        await b.end();
      }
    });
  }
});

describe('a command that does not exist', () => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(`
upstreams:
  ghost:
    type: stdio
    command: /nonexistent/gh-no-such-command-${randomBytes(4).toString('hex')}
  fx:
    type: stdio
    command: ${JSON.stringify(process.execPath)}
    args: ${JSON.stringify([FIXTURE, mark])}
routes:
  - { path: /ghost, upstreams: [ghost] }
  - { path: /mcp, upstreams: [fx] }
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it('fails initialize with -32001 naming the upstream and ENOENT, and the gateway stays up', async () => {
    for (let i = 0; i < 2; i++) {
      const client = new Client({ name: 'stdio-test', version: '1.0.0' });
      try {
        const err = await rpcError(
          client.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/ghost`))),
        );
        expect(err.code).toBe(-32001);
        expect(err.message).toContain('"ghost"');
        expect(err.message).toContain('ENOENT');
      } finally {
        await client.close();
      }
    }
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    const c = await connect(gw.url);
    try {
      expect(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'alive' } }))).toBe(
        'echo:alive',
      );
    } finally {
      await c.end();
    }
  });
});

describe('max_processes (per-session)', () => {
  const mark = marker();
  let gw: Running;

  beforeAll(async () => {
    gw = await start(stdioYaml({ args: [FIXTURE], mode: 'per-session', mark, extra: 'max_processes: 2' }));
    const catalog = gw.gateway.catalog;
    await catalog.ready('/mcp', catalog.profileFor({}), 5_000);
  });
  afterAll(async () => {
    await gw?.close();
    await noProcessLeft(mark);
  });

  it('refuses the session over the cap with -32006 and never runs more processes than the cap', async () => {
    const clients = await Promise.all([connect(gw.url), connect(gw.url), connect(gw.url)]);
    try {
      const outcomes = await Promise.all(
        clients.map((c) =>
          c.client.callTool({ name: 'echo', arguments: { text: 'x' } }).then(
            (r) => textOf(r),
            (e: unknown) => e,
          ),
        ),
      );
      const refused = outcomes.filter((o): o is McpError => o instanceof McpError);
      expect(refused.length).toBeGreaterThan(0);
      for (const e of refused) {
        expect(e.code).toBe(-32006);
        expect(e.message).toContain('max_processes');
        expect(e.message).toContain('"fx"');
      }
      expect(outcomes.filter((o) => o === 'echo:x').length).toBeGreaterThan(0);
      // The cap's 2 client processes, plus the catalogue's own (which the cap does not count).
      expect(countProcesses(mark)).toBeLessThanOrEqual(3);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  // Regression (was a bug in src/upstream/stdio.ts StdioUpstream#start, with src/catalog/upstream-catalog.ts #openSession): the
  // catalogue's own long-lived session (one per client-capability profile) is a process counted against
  // max_processes, so with max_processes: 2 only ONE client session gets a process and the second gets
  // -32006 (and a client with a new capability profile cannot even initialize); expected: two client
  // sessions run, the third concurrent session's first call gets -32006.
  it('lets two sessions run and refuses the third with -32006', async () => {
    const a = await connect(gw.url);
    const b = await connect(gw.url);
    const c = await connect(gw.url);
    try {
      expect(textOf(await a.client.callTool({ name: 'echo', arguments: { text: 'a' } }))).toBe('echo:a');
      expect(textOf(await b.client.callTool({ name: 'echo', arguments: { text: 'b' } }))).toBe('echo:b');
      const err = await rpcError(c.client.callTool({ name: 'echo', arguments: { text: 'c' } }));
      expect(err.code).toBe(-32006);
    } finally {
      await Promise.all([a.end(), b.end(), c.end()]);
    }
  });
});
