// The official SDK Client through the gateway to real servers: server-everything (Streamable HTTP)
// and our demo server. Everything a client does directly must work the same through the gateway.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from '../../src/demo/demo-server.ts';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';

async function connect(url: string, capabilities: Record<string, object> = {}): Promise<Client> {
  const client = new Client({ name: 'gatehouse-test', version: '1.0.0' }, { capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

describe('SDK client → gateway → server-everything', () => {
  let everything: EverythingServer;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    everything = await startEverything();
    gw = await startGateway(singleUpstreamConfig(everything.url));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await everything?.close();
  });

  it('initializes with the upstream identity and capabilities, and lists the same tools as directly', async () => {
    const direct = await connect(everything.url);
    const via = await connect(url);
    try {
      expect(via.getServerVersion()).toEqual(direct.getServerVersion());
      expect(via.getServerCapabilities()).toEqual(direct.getServerCapabilities());
      expect(via.getInstructions()).toEqual(direct.getInstructions());
      const [a, b] = await Promise.all([direct.listTools(), via.listTools()]);
      expect(b.tools.map((t) => t.name).sort()).toEqual(a.tools.map((t) => t.name).sort());
      expect(b.tools.find((t) => t.name === 'echo')).toEqual(a.tools.find((t) => t.name === 'echo'));
    } finally {
      await direct.close();
      await via.close();
    }
  });

  it('calls tools, including structured content and images', async () => {
    const c = await connect(url);
    try {
      expect(await c.callTool({ name: 'echo', arguments: { message: 'héllo ✓' } })).toEqual({
        content: [{ type: 'text', text: 'Echo: héllo ✓' }],
      });
      const sum = await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
      expect(JSON.stringify(sum.content)).toContain('42');
      const img = await c.callTool({ name: 'get-tiny-image', arguments: {} });
      expect((img.content as { type: string }[]).some((x) => x.type === 'image')).toBe(true);
      const structured = await c.callTool({
        name: 'get-structured-content',
        arguments: { location: 'New York' },
      });
      expect(structured.structuredContent).toBeTypeOf('object');
    } finally {
      await c.close();
    }
  });

  it('streams progress notifications of a long call back to the client', async () => {
    const c = await connect(url);
    try {
      const progress: number[] = [];
      const r = await c.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      );
      expect(progress).toEqual([1, 2, 3, 4]);
      expect(JSON.stringify(r.content)).toContain('completed');
    } finally {
      await c.close();
    }
  });

  it('lists and reads resources and templates, and gets prompts with arguments', async () => {
    const c = await connect(url);
    try {
      const resources = await c.listResources();
      expect(resources.resources.length).toBeGreaterThan(0);
      const first = resources.resources[0]!;
      const read = await c.readResource({ uri: first.uri });
      expect(read.contents[0]?.uri).toBe(first.uri);
      const templates = await c.listResourceTemplates();
      expect(templates.resourceTemplates.length).toBeGreaterThan(0);
      const prompts = await c.listPrompts();
      expect(prompts.prompts.map((p) => p.name)).toContain('args-prompt');
      const got = await c.getPrompt({ name: 'args-prompt', arguments: { city: 'Lyon' } });
      expect(JSON.stringify(got.messages)).toContain('Lyon');
      const completion = await c.complete({
        ref: { type: 'ref/prompt', name: 'completable-prompt' },
        argument: { name: 'department', value: 'E' },
      });
      expect(completion.completion.values).toContain('Engineering');
    } finally {
      await c.close();
    }
  });

  it('relays server→client requests: sampling, elicitation and roots reach the client and the answers return', async () => {
    const c = await connect(url, { sampling: {}, elicitation: {}, roots: { listChanged: true } });
    try {
      c.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
        model: 'test-model',
        role: 'assistant',
        content: { type: 'text', text: `sampled: ${JSON.stringify(req.params.messages[0]?.content)}` },
      }));
      c.setRequestHandler(ElicitRequestSchema, async () => ({
        action: 'accept',
        content: { color: 'red', number: 7, pets: 'dogs' },
      }));
      c.setRequestHandler(ListRootsRequestSchema, async () => ({
        roots: [{ uri: 'file:///tmp/gatehouse-root', name: 'root' }],
      }));
      const sampled = await c.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'ping?' } });
      expect(JSON.stringify(sampled.content)).toContain('test-model');
      const elicited = await c.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(JSON.stringify(elicited.content)).toContain('accept');
      // server-everything asks for roots on its own after initialization; its tool then reports them.
      await new Promise((r) => setTimeout(r, 300));
      const roots = await c.callTool({ name: 'get-roots-list', arguments: {} });
      expect(JSON.stringify(roots.content)).toContain('gatehouse-root');
    } finally {
      await c.close();
    }
  });

  it('passes logging/setLevel and delivers log notifications; answers ping itself', async () => {
    const c = await connect(url);
    try {
      const logs: unknown[] = [];
      c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        logs.push(n.params);
      });
      await c.setLoggingLevel('debug');
      await c.callTool({ name: 'toggle-simulated-logging', arguments: {} });
      await expect.poll(() => logs.length, { timeout: 10_000 }).toBeGreaterThan(0);
      await c.callTool({ name: 'toggle-simulated-logging', arguments: {} });
      expect(await c.ping()).toEqual({});
    } finally {
      await c.close();
    }
  });

  it('passes errors through: unknown tool and invalid arguments', async () => {
    const c = await connect(url);
    try {
      const unknown = await c.callTool({ name: 'no-such-tool', arguments: {} }).catch((e: unknown) => e);
      // SDK servers answer an unknown tool either as a JSON-RPC error or as an isError result.
      if (unknown instanceof McpError) expect(unknown.code).toBe(-32602);
      else expect((unknown as { isError?: boolean }).isError).toBe(true);
      const bad = await c.callTool({ name: 'get-sum', arguments: { a: 'x' } }).catch((e: unknown) => e);
      if (bad instanceof McpError) expect(bad.code).toBe(-32602);
      else expect((bad as { isError?: boolean }).isError).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('gives each session its own upstream session, and ends it on DELETE', async () => {
    const a = await connect(url);
    const b = await connect(url);
    try {
      const ta = a.transport as StreamableHTTPClientTransport;
      const tb = b.transport as StreamableHTTPClientTransport;
      expect(ta.sessionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(ta.sessionId).not.toBe(tb.sessionId);
      await ta.terminateSession();
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': ta.sessionId ?? 'x',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      expect(res.status).toBe(404);
      expect((await b.listTools()).tools.length).toBeGreaterThan(0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('SDK client → gateway → demo server', () => {
  let demo: DemoServer;
  let gw: RunningGateway;

  beforeAll(async () => {
    demo = await startDemoServer();
    gw = await startGateway(singleUpstreamConfig(demo.url));
  });
  afterAll(async () => {
    await gw?.close();
    await demo?.close();
  });

  it('lists, calls with structured output and progress, reads the resource and gets the prompt', async () => {
    const c = await connect(`${gw.base}/mcp`);
    try {
      const tools = (await c.listTools()).tools.map((t) => t.name);
      expect(tools).toEqual(expect.arrayContaining(['echo', 'add', 'get_time', 'slow_count']));
      const add = await c.callTool({ name: 'add', arguments: { a: 1.5, b: 2 } });
      expect(add.structuredContent).toEqual({ sum: 3.5 });
      const progress: number[] = [];
      await c.callTool({ name: 'slow_count', arguments: { to: 3 } }, undefined, {
        onprogress: (p) => progress.push(p.progress),
      });
      expect(progress.length).toBeGreaterThan(0);
      const resources = (await c.listResources()).resources;
      expect(resources.length).toBeGreaterThan(0);
      const read = await c.readResource({ uri: resources[0]!.uri });
      expect(read.contents.length).toBe(1);
      const prompts = (await c.listPrompts()).prompts;
      expect(prompts.length).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });
});
