// Old clients: the SDK's SSEClientTransport (the 2024-11-05 HTTP+SSE transport) through the gateway's
// <route>/sse + <route>/messages endpoint, to real upstreams.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { type MisbehavingUpstream, startMisbehavingUpstream } from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

describe('legacy HTTP+SSE clients', () => {
  let everything: EverythingServer;
  let recorder: MisbehavingUpstream;
  let gw: RunningGateway;

  beforeAll(async () => {
    everything = await startEverything();
    recorder = await startMisbehavingUpstream();
    gw = await startGateway(`
upstreams:
  ev: { type: streamable-http, url: "${everything.url}" }
  rec: { type: streamable-http, url: "${recorder.url}" }
routes:
  - path: /mcp
    upstreams: [ev]
  - path: /rec
    upstreams: [rec]
health: { interval: 0 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await recorder?.close();
    await everything?.close();
  });

  async function connect(path: string, capabilities: Record<string, object> = {}): Promise<Client> {
    const client = new Client({ name: 'old-client', version: '1.0.0' }, { capabilities });
    await client.connect(new SSEClientTransport(new URL(`${gw.base}${path}/sse`)));
    return client;
  }

  it('lists, calls with progress, and relays sampling to an SSE-only client', async () => {
    const c = await connect('/mcp', { sampling: {} });
    try {
      c.setRequestHandler(CreateMessageRequestSchema, async () => ({
        model: 'old-model',
        role: 'assistant',
        content: { type: 'text', text: 'sampled' },
      }));
      expect(c.getServerVersion()?.name).toBeTypeOf('string');
      const tools = (await c.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('echo');
      expect(await c.callTool({ name: 'echo', arguments: { message: 'over sse' } })).toEqual({
        content: [{ type: 'text', text: 'Echo: over sse' }],
      });
      const progress: number[] = [];
      await c.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
        undefined,
        {
          onprogress: (p) => progress.push(p.progress),
        },
      );
      // The gateway relays all three before the answer (checked on the wire); the SDK's SSE client handles
      // notifications a tick after responses, so it may drop the last one once the answer has arrived.
      expect(progress.slice(0, 2)).toEqual([1, 2]);
      const sampled = await c.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi' } });
      expect(JSON.stringify(sampled.content)).toContain('old-model');
    } finally {
      await c.close();
    }
  });

  it('ends the session and its upstream session when the SSE stream closes', async () => {
    const c = await connect('/rec');
    await c.callTool({ name: 'echo', arguments: { text: 'x' } });
    const upstreamSid = recorder.issuedSessionIds.at(-1);
    await c.close();
    await expect
      .poll(
        () =>
          recorder.received.some(
            (r) => r.httpMethod === 'DELETE' && r.headers['mcp-session-id'] === upstreamSid,
          ),
        {
          timeout: 3000,
        },
      )
      .toBe(true);
  });

  it('refuses posts to an unknown session (404), non-JSON (415) and batches (400)', async () => {
    const post = (query: string, body: string, type = 'application/json') =>
      request(`${gw.base}/mcp/messages${query}`, { method: 'POST', headers: { 'content-type': type }, body });
    const unknown = await post('?sessionId=nope', '{"jsonrpc":"2.0","id":1,"method":"ping"}');
    expect(unknown.statusCode).toBe(404);
    await unknown.body.dump();

    // A real stream, to get a real session id from its endpoint event.
    const stream = await request(`${gw.base}/mcp/sse`, { headers: { accept: 'text/event-stream' } });
    expect(stream.statusCode).toBe(200);
    stream.body.setEncoding('utf8');
    // Read the first event without ending the stream (which would end the session).
    const text = await new Promise<string>((resolve) => {
      let seen = '';
      stream.body.on('data', (chunk: string) => {
        seen += chunk;
        if (seen.includes('\n\n')) resolve(seen);
      });
    });
    const endpoint = /event: endpoint\ndata: (\S+)/.exec(text)?.[1];
    expect(endpoint).toMatch(/^\/mcp\/messages\?sessionId=[A-Za-z0-9_-]{32}$/);
    const query = endpoint!.slice(endpoint!.indexOf('?'));
    const wrongType = await post(query, 'x', 'text/plain');
    expect(wrongType.statusCode).toBe(415);
    await wrongType.body.dump();
    const batch = await post(query, '[{"jsonrpc":"2.0","id":1,"method":"ping"}]');
    expect(batch.statusCode).toBe(400);
    expect(JSON.stringify(await batch.body.json())).toContain('batches');
    stream.body.destroy();
  });
});
