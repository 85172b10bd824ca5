// A 2024-11-05 HTTP+SSE upstream (server-everything in SSE mode) behind the gateway, used by a modern
// Streamable HTTP client (the official SDK): the gateway bridges the transports both ways.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EverythingSseServer, startEverythingSse } from '../fixtures/everything-sse.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

describe('SDK client → gateway → legacy SSE upstream', () => {
  let upstream: EverythingSseServer;
  let gw: RunningGateway;

  beforeAll(async () => {
    upstream = await startEverythingSse();
    gw = await startGateway(`
upstreams:
  old: { type: sse, url: "${upstream.url}" }
routes:
  - path: /mcp
    upstreams: [old]
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('lists and calls, with progress, sampling and elicitation relayed across the transports', async () => {
    const c = new Client(
      { name: 'modern', version: '1.0.0' },
      { capabilities: { sampling: {}, elicitation: {} } },
    );
    c.setRequestHandler(CreateMessageRequestSchema, async () => ({
      model: 'bridge-model',
      role: 'assistant',
      content: { type: 'text', text: 'ok' },
    }));
    c.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: { color: 'red', number: 3, pets: 'cats' },
    }));
    await c.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`)));
    try {
      const tools = (await c.listTools()).tools.map((t) => t.name);
      expect(tools).toEqual(expect.arrayContaining(['echo', 'trigger-sampling-request']));
      expect(await c.callTool({ name: 'echo', arguments: { message: 'bridged' } })).toEqual({
        content: [{ type: 'text', text: 'Echo: bridged' }],
      });
      const progress: number[] = [];
      await c.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
        undefined,
        {
          onprogress: (p) => progress.push(p.progress),
        },
      );
      expect(progress).toEqual([1, 2, 3]);
      const sampled = await c.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'x' } });
      expect(JSON.stringify(sampled.content)).toContain('bridge-model');
      const elicited = await c.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(JSON.stringify(elicited.content)).toContain('accept');
    } finally {
      await c.close();
    }
  });
});
