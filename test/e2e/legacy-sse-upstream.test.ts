// The `sse` upstream (2024-11-05 HTTP+SSE transport) used directly, against the reference
// server-everything in SSE mode: handshake, calls, progress, sampling answered through respond(), the
// stream ended on close and on the upstream's death. Then the ways an SSE peer can be wrong: absent,
// silent, not SSE, pointing its endpoint elsewhere, oversized.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatehouseError } from '../../src/mcp/errors.ts';
import type { JsonRpcMessage, JsonRpcNotification, JsonRpcRequest } from '../../src/mcp/jsonrpc.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { type LegacySseOptions, LegacySseUpstream } from '../../src/upstream/legacy-sse.ts';
import type { ClientInfo } from '../../src/upstream/types.ts';
import { type EverythingSseServer, startEverythingSse } from '../fixtures/everything-sse.ts';

const logger = createLogger('silent');

const CLIENT: ClientInfo = {
  protocolVersion: '2024-11-05',
  capabilities: { sampling: {} },
  clientInfo: { name: 'legacy-sse-test', version: '0' },
};

function upstreamFor(url: string, overrides: Partial<LegacySseOptions> = {}): LegacySseUpstream {
  return new LegacySseUpstream({
    name: 'legacy',
    url,
    headers: { 'x-test': 'yes' },
    connectTimeoutMs: 3_000,
    requestTimeoutMs: 10_000,
    maxConcurrency: 10,
    maxMessageBytes: 1_000_000,
    logger,
    ...overrides,
  });
}

/** The GatehouseError a promise rejects with (fails the test if it resolves or throws anything else). */
async function rejection(p: Promise<unknown>): Promise<GatehouseError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatehouseError);
  return err as GatehouseError;
}

function toolText(res: unknown): string {
  const r = res as { result?: { content?: { type: string; text?: string }[] } };
  return (r.result?.content ?? []).map((c) => c.text ?? '').join('\n');
}

describe('sse upstream against server-everything (2024-11-05 HTTP+SSE)', () => {
  let server: EverythingSseServer;
  let upstream: LegacySseUpstream;

  beforeAll(async () => {
    server = await startEverythingSse();
    upstream = upstreamFor(server.url);
  });

  afterAll(async () => {
    await upstream?.close();
    await server?.close();
  });

  it('connects: GET stream, relative endpoint resolved, initialize negotiated, upstream up', async () => {
    const session = await upstream.connect(CLIENT);
    try {
      expect(session.protocolVersion).toBe('2024-11-05');
      expect(session.initializeResult.serverInfo).toMatchObject({ name: 'mcp-servers/everything' });
      expect(upstream.connectionCount).toBe(1);
      expect(upstream.health().status).toBe('up');
      await server.waitFor(/Client Connected:\s+[\w-]+/);
      // The endpoint event was relative (/message?sessionId=…): the POSTs reached the same session.
      await server.waitFor(/Client Message from\s+[\w-]+/);
    } finally {
      await session.close();
    }
  });

  it('lists tools (the sampling tool only because the client declared sampling) and calls echo', async () => {
    const session = await upstream.connect(CLIENT);
    try {
      const list = await session.request({ jsonrpc: '2.0', id: 'list-1', method: 'tools/list' });
      expect(list.id).toBe('list-1');
      expect(list).toHaveProperty('result.tools');
      const tools = (list as unknown as { result: { tools: { name: string }[] } }).result.tools;
      const names = tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(names).toContain('trigger-sampling-request');

      const call = await session.request({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'over the legacy stream' } },
      });
      expect(call.id).toBe(7);
      expect(toolText(call)).toBe('Echo: over the legacy stream');
    } finally {
      await session.close();
    }
  });

  it('relays progress to the request it belongs to, under the client’s own token', async () => {
    const session = await upstream.connect(CLIENT);
    try {
      const seen: (JsonRpcNotification | JsonRpcRequest)[] = [];
      const res = await session.request(
        {
          jsonrpc: '2.0',
          id: 'long',
          method: 'tools/call',
          params: {
            name: 'trigger-long-running-operation',
            arguments: { duration: 0.3, steps: 3 },
            _meta: { progressToken: 'client-token' },
          },
        },
        { onMessage: (m) => seen.push(m) },
      );
      expect(toolText(res)).toContain('Long running operation completed');
      const progress = seen.filter((m) => m.method === 'notifications/progress');
      expect(progress.map((m) => m.params)).toEqual([
        { progress: 1, total: 3, progressToken: 'client-token' },
        { progress: 2, total: 3, progressToken: 'client-token' },
        { progress: 3, total: 3, progressToken: 'client-token' },
      ]);
    } finally {
      await session.close();
    }
  });

  it('delivers a sampling request to the call in flight and carries the answer back via respond()', async () => {
    const session = await upstream.connect(CLIENT);
    try {
      const requests: JsonRpcRequest[] = [];
      const res = await session.request(
        {
          jsonrpc: '2.0',
          id: 'sample',
          method: 'tools/call',
          params: { name: 'trigger-sampling-request', arguments: { prompt: 'say hi', maxTokens: 5 } },
        },
        {
          onMessage: (m) => {
            if (!('id' in m)) return;
            requests.push(m);
            void session.respond({
              jsonrpc: '2.0',
              id: m.id,
              result: {
                role: 'assistant',
                content: { type: 'text', text: 'hi from the test' },
                model: 'test-model',
                stopReason: 'endTurn',
              },
            });
          },
        },
      );
      expect(requests).toHaveLength(1);
      expect(requests[0]?.method).toBe('sampling/createMessage');
      const text = toolText(res);
      expect(text).toContain('hi from the test');
      expect(text).toContain('test-model');
    } finally {
      await session.close();
    }
  });

  it('session.close() ends its GET stream: the server sees the client go; the session refuses requests', async () => {
    const before = upstream.connectionCount;
    const session = await upstream.connect(CLIENT);
    const ids = [...server.output().matchAll(/Client Connected:\s+([\w-]+)/g)].map((m) => m[1]);
    const id = ids.at(-1);
    expect(id).toBeDefined();
    expect(upstream.connectionCount).toBe(before + 1);
    await session.close();
    expect(session.closed).toBe(true);
    expect(upstream.connectionCount).toBe(before);
    await server.waitFor(new RegExp(`Client Disconnected:\\s+${id}`));
    const err = await rejection(session.request({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    expect(err.rpcCode).toBe(-32001);
    expect(err.message).toContain('upstream "legacy"');
  });

  it('upstream.close() ends every stream and refuses new sessions', async () => {
    const own = upstreamFor(server.url);
    const a = await own.connect(CLIENT);
    const b = await own.connect(CLIENT);
    expect(own.connectionCount).toBe(2);
    const idsBefore = [...server.output().matchAll(/Client Connected:\s+([\w-]+)/g)].map((m) => m[1]);
    const [idA, idB] = idsBefore.slice(-2);
    await own.close();
    expect(own.connectionCount).toBe(0);
    expect(a.closed && b.closed).toBe(true);
    await server.waitFor(new RegExp(`Client Disconnected:\\s+${idA}`));
    await server.waitFor(new RegExp(`Client Disconnected:\\s+${idB}`));
    const err = await rejection(own.connect(CLIENT));
    expect(err.code).toBe('ERR_SHUTTING_DOWN');
  });

  it('an upstream that dies mid-call fails the call with -32001 naming it, and is marked down', async () => {
    const doomed = await startEverythingSse();
    const own = upstreamFor(doomed.url, { name: 'doomed' });
    try {
      const session = await own.connect(CLIENT);
      // Killed once the call is under way (its first progress): the stream, not the POST, breaks.
      const started = Promise.withResolvers<void>();
      const call = session.request(
        {
          jsonrpc: '2.0',
          id: 'slow',
          method: 'tools/call',
          params: {
            name: 'trigger-long-running-operation',
            arguments: { duration: 10, steps: 50 },
            _meta: { progressToken: 1 },
          },
        },
        { onMessage: () => started.resolve() },
      );
      await started.promise;
      doomed.kill();
      const err = await rejection(call);
      expect(err.rpcCode).toBe(-32001);
      expect(err.message).toMatch(/^upstream "doomed" (closed|broke) its SSE stream/);
      expect(session.closed).toBe(true);
      expect(own.health().status).toBe('down');
      expect(own.connectionCount).toBe(0);
    } finally {
      await own.close();
      await doomed.close();
    }
  });
});

// --- A hand-written SSE peer, for the failures a real server does not produce ------------------------

interface FakeSse {
  origin: string;
  /** Paths of every POST it received. */
  posts: string[];
  /** Resolves when the client closes its GET stream. */
  streamClosed: Promise<void>;
  close(): Promise<void>;
}

interface FakeBehaviour {
  /** The GET's answer: default 200 text/event-stream. */
  status?: number;
  /** The endpoint event's data; undefined: never sends one. */
  endpoint?: (origin: string) => string;
  /** Answers tools/list with a message this long. */
  oversized?: number;
}

async function startFake(behaviour: FakeBehaviour): Promise<FakeSse> {
  let stream: ServerResponse | undefined;
  const posts: string[] = [];
  const closed = Promise.withResolvers<void>();
  const send = (m: JsonRpcMessage | string): void => {
    stream?.write(`event: message\ndata: ${typeof m === 'string' ? m : JSON.stringify(m)}\n\n`);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      if (behaviour.status !== undefined && behaviour.status !== 200) {
        res.writeHead(behaviour.status, { 'content-type': 'text/plain' }).end('no SSE here');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      stream = res;
      req.on('close', () => closed.resolve());
      if (behaviour.endpoint) res.write(`event: endpoint\ndata: ${behaviour.endpoint(origin)}\n\n`);
      return;
    }
    posts.push(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(202).end('Accepted');
      const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: number; method?: string };
      if (m.method === 'initialize') {
        send({
          jsonrpc: '2.0',
          id: m.id ?? 0,
          result: {
            protocolVersion: '2024-11-05',
            capabilities: { tools: {} },
            serverInfo: { name: 'fake', version: '0' },
          },
        });
      } else if (m.method === 'tools/list' && behaviour.oversized !== undefined) {
        send(
          `{"jsonrpc":"2.0","id":${m.id},"result":{"tools":[],"pad":"${'x'.repeat(behaviour.oversized)}"}}`,
        );
      } else if (m.method === 'tools/list') {
        send({ jsonrpc: '2.0', id: m.id ?? 0, result: { tools: [] } });
      }
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    posts,
    streamClosed: closed.promise,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

describe('sse upstream failures', () => {
  it('an unreachable URL fails connect with -32001 naming the upstream, and marks it down', async () => {
    const up = upstreamFor('http://127.0.0.1:1/sse', { name: 'nowhere' });
    try {
      const err = await rejection(up.connect(CLIENT));
      expect(err.rpcCode).toBe(-32001);
      expect(err.message).toContain('upstream "nowhere" is unreachable');
      expect(err.message).toContain('ECONNREFUSED');
      expect(up.health()).toMatchObject({ status: 'down', lastError: err.message });
      expect(up.connectionCount).toBe(0);
    } finally {
      await up.close();
    }
  });

  it('an endpoint event on another origin is refused: nothing is POSTed, the stream is closed', async () => {
    const fake = await startFake({ endpoint: () => 'http://attacker.example:8080/message?sessionId=1' });
    const up = upstreamFor(`${fake.origin}/sse`, { name: 'redirected' });
    try {
      const err = await rejection(up.connect(CLIENT));
      expect(err.rpcCode).toBe(-32004);
      expect(err.message).toContain('upstream "redirected" named a message endpoint on another origin');
      expect(err.message).toContain('http://attacker.example:8080');
      expect(err.message).toContain(fake.origin);
      await fake.streamClosed;
      expect(fake.posts).toEqual([]);
      expect(up.connectionCount).toBe(0);
    } finally {
      await up.close();
      await fake.close();
    }
  });

  it('an absolute endpoint on the same origin is used as given (path and query)', async () => {
    const fake = await startFake({ endpoint: (origin) => `${origin}/rpc/messages?session=abc&x=1` });
    const up = upstreamFor(`${fake.origin}/events?stream=1`);
    try {
      const session = await up.connect(CLIENT);
      const list = await session.request({ jsonrpc: '2.0', id: 'l', method: 'tools/list' });
      expect(list).toEqual({ jsonrpc: '2.0', id: 'l', result: { tools: [] } });
      expect(fake.posts.length).toBeGreaterThanOrEqual(3); // initialize, initialized, tools/list
      expect(new Set(fake.posts)).toEqual(new Set(['/rpc/messages?session=abc&x=1']));
    } finally {
      await up.close();
      await fake.close();
    }
  });

  it('a stream that never sends its endpoint event fails within connect_timeout and is closed', async () => {
    const fake = await startFake({});
    const up = upstreamFor(`${fake.origin}/sse`, { name: 'silent', connectTimeoutMs: 300 });
    try {
      const err = await rejection(up.connect(CLIENT));
      expect(err.rpcCode).toBe(-32001);
      expect(err.message).toContain('upstream "silent" did not send its endpoint event within 300 ms');
      await fake.streamClosed;
      expect(up.connectionCount).toBe(0);
    } finally {
      await up.close();
      await fake.close();
    }
  });

  it('a URL that answers without an SSE stream says so (and points at streamable-http)', async () => {
    const fake = await startFake({ status: 405 });
    const up = upstreamFor(`${fake.origin}/mcp`, { name: 'wrong-type' });
    try {
      const err = await rejection(up.connect(CLIENT));
      expect(err.rpcCode).toBe(-32004);
      expect(err.message).toContain('upstream "wrong-type" answered GET');
      expect(err.message).toContain('HTTP 405 (text/plain), not an SSE stream');
      expect(err.message).toContain('streamable-http');
    } finally {
      await up.close();
      await fake.close();
    }
  });

  it('an event over max_message_bytes ends the session and fails the call in flight', async () => {
    const fake = await startFake({ endpoint: () => '/message', oversized: 5_000 });
    const up = upstreamFor(`${fake.origin}/sse`, { name: 'big', maxMessageBytes: 2_000 });
    try {
      const session = await up.connect(CLIENT);
      const err = await rejection(session.request({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
      expect(err.rpcCode).toBe(-32001);
      expect(err.message).toContain('upstream "big" sent a message larger than 2000 bytes');
      expect(session.closed).toBe(true);
      await fake.streamClosed;
    } finally {
      await up.close();
      await fake.close();
    }
  });
});
