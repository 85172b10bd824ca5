// Every bad input the edge must refuse, with the exact HTTP status, JSON-RPC code and a telling message,
// and proof that the gateway keeps serving afterwards. Then the things a proxy must rewrite: request
// ids (concurrent clients reusing "1") and session ids (the upstream's never leaks, the client's never
// reaches the upstream). Real servers, real HTTP on 127.0.0.1.

import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from '../../src/demo/demo-server.ts';
import { type MisbehavingUpstream, startMisbehavingUpstream } from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';
import { type Answer, type HeaderSpec, type Msg, send } from '../helpers/http.ts';

const MAX_BODY = 4096;

function initializeBody(version: string, id: string | number = 0): Msg {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: version,
      capabilities: {},
      clientInfo: { name: 'bad-input-test', version: '1.0.0' },
    },
  };
}

/** One downstream session, opened with initialize + notifications/initialized. */
class Session {
  readonly url: string;
  readonly id: string;
  readonly version: string;

  constructor(url: string, id: string, version: string) {
    this.url = url;
    this.id = id;
    this.version = version;
  }

  static async open(url: string, version = '2025-11-25'): Promise<Session> {
    const a = await send(url, { body: initializeBody(version), headers: { 'mcp-protocol-version': null } });
    expect(a.status).toBe(200);
    const sid = a.headers['mcp-session-id'];
    expect(typeof sid).toBe('string');
    expect((a.messages[0]?.result as Msg | undefined)?.protocolVersion).toBe(version);
    const s = new Session(url, sid as string, version);
    const n = await s.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    expect(n.status).toBe(202);
    return s;
  }

  headers(extra: HeaderSpec = {}): HeaderSpec {
    return { 'mcp-session-id': this.id, 'mcp-protocol-version': this.version, ...extra };
  }

  post(body: unknown, extra: HeaderSpec = {}): Promise<Answer> {
    return send(this.url, { body, headers: this.headers(extra) });
  }

  call(id: string | number, name: string, args: Msg, extra: HeaderSpec = {}): Promise<Answer> {
    return this.post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, extra);
  }

  async delete(): Promise<void> {
    const a = await send(this.url, { method: 'DELETE', headers: this.headers() });
    expect(a.status).toBe(200);
  }
}

function onlyMessage(a: Answer): Msg {
  const last = a.messages.at(-1);
  if (!last) throw new Error(`no JSON-RPC message in the answer (HTTP ${a.status}): ${a.text}`);
  return last;
}

function errorOf(a: Answer): { code: number; message: string } {
  const e = onlyMessage(a).error as { code: number; message: string } | undefined;
  if (!e) throw new Error(`expected a JSON-RPC error, got: ${a.text}`);
  return e;
}

function resultText(m: Msg): string {
  const r = m.result as { content?: { text?: string }[] } | undefined;
  if (!r?.content) throw new Error(`expected a tool result, got: ${JSON.stringify(m)}`);
  return r.content.map((c) => c.text ?? '').join('');
}

describe('bad input at the edge (gateway → demo server)', () => {
  let demo: DemoServer;
  let gw: RunningGateway;
  let url: string;
  let good: Session;
  let healthChecks = 0;

  beforeAll(async () => {
    demo = await startDemoServer();
    gw = await startGateway(singleUpstreamConfig(demo.url, `limits: { max_body_bytes: ${MAX_BODY} }`));
    url = `${gw.base}/mcp`;
    good = await Session.open(url);
  });
  afterAll(async () => {
    await gw?.close();
    await demo?.close();
  });

  /** The gateway still serves: a tool call on a healthy session, and a brand new session. */
  async function expectStillServing(): Promise<void> {
    const n = ++healthChecks;
    const a = await good.call(`still-${n}`, 'echo', { message: `alive ${n}` });
    expect(a.status).toBe(200);
    const m = onlyMessage(a);
    expect(m.id).toBe(`still-${n}`);
    expect(resultText(m)).toBe(`alive ${n}`);
  }

  interface Ctx {
    url: string;
    port: string;
    session(version?: string): Promise<Session>;
  }
  interface Row {
    name: string;
    send(ctx: Ctx): Promise<Answer>;
    status: number;
    code: number;
    message: string;
  }

  const tooBig = {
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message: 'x'.repeat(MAX_BODY) } },
  };
  const ping = (id: string | number) => ({ jsonrpc: '2.0', id, method: 'ping' });
  const batchOfPings = [ping(1), ping(2)];

  const rows: Row[] = [
    // --- transport: DNS rebinding, media types, size, method ---
    {
      name: 'Origin not allowed',
      send: ({ url }) =>
        send(url, { body: initializeBody('2025-11-25'), headers: { origin: 'http://evil.example' } }),
      status: 403,
      code: -32000,
      message: 'Origin "http://evil.example" is not allowed',
    },
    {
      name: 'Origin not allowed on an existing session',
      send: async ({ session }) =>
        (await session()).post(ping(1), { origin: 'http://127.0.0.1.evil.example' }),
      status: 403,
      code: -32000,
      message: 'is not allowed',
    },
    {
      name: 'Origin "null" (sandboxed page)',
      send: ({ url }) => send(url, { body: initializeBody('2025-11-25'), headers: { origin: 'null' } }),
      status: 403,
      code: -32000,
      message: 'Origin "null" is not allowed',
    },
    {
      name: 'Host not allowed (DNS rebinding)',
      send: ({ url, port }) =>
        send(url, { body: initializeBody('2025-11-25'), headers: { host: `attacker.example:${port}` } }),
      status: 403,
      code: -32000,
      message: 'Host "attacker.example:',
    },
    {
      name: 'Host not allowed on GET',
      send: async ({ session, port }) => {
        const s = await session();
        return send(s.url, {
          method: 'GET',
          headers: s.headers({ accept: 'text/event-stream', host: `rebind.example:${port}` }),
        });
      },
      status: 403,
      code: -32000,
      message: 'Host "rebind.example:',
    },
    {
      name: 'POST with Accept: application/json only',
      send: ({ url }) =>
        send(url, { body: initializeBody('2025-11-25'), headers: { accept: 'application/json' } }),
      status: 406,
      code: -32000,
      message: 'Accept header must list both application/json and text/event-stream',
    },
    {
      name: 'POST with Accept: text/event-stream only',
      send: ({ url }) =>
        send(url, { body: initializeBody('2025-11-25'), headers: { accept: 'text/event-stream' } }),
      status: 406,
      code: -32000,
      message: 'Not Acceptable',
    },
    {
      name: 'POST without Accept',
      send: ({ url }) => send(url, { body: initializeBody('2025-11-25'), headers: { accept: null } }),
      status: 406,
      code: -32000,
      message: 'Not Acceptable',
    },
    {
      name: 'POST with Accept that refuses SSE (q=0)',
      send: ({ url }) =>
        send(url, {
          body: initializeBody('2025-11-25'),
          headers: { accept: 'application/json, text/event-stream;q=0' },
        }),
      status: 406,
      code: -32000,
      message: 'Not Acceptable',
    },
    {
      name: 'Content-Type text/plain',
      send: ({ url }) =>
        send(url, { body: initializeBody('2025-11-25'), headers: { 'content-type': 'text/plain' } }),
      status: 415,
      code: -32000,
      message: 'Content-Type must be application/json',
    },
    {
      name: 'Content-Type application/json-patch+json',
      send: ({ url }) =>
        send(url, {
          body: initializeBody('2025-11-25'),
          headers: { 'content-type': 'application/json-patch+json' },
        }),
      status: 415,
      code: -32000,
      message: 'Content-Type must be application/json',
    },
    {
      name: 'no Content-Type',
      send: ({ url }) => send(url, { body: initializeBody('2025-11-25'), headers: { 'content-type': null } }),
      status: 415,
      code: -32000,
      message: 'Content-Type must be application/json',
    },
    {
      name: 'body over limits.max_body_bytes (Content-Length)',
      send: async ({ session }) => (await session()).post(tooBig),
      status: 413,
      code: -32000,
      message: `exceeds ${MAX_BODY} bytes (limits.max_body_bytes)`,
    },
    {
      name: 'body over limits.max_body_bytes (chunked, no Content-Length)',
      send: async ({ session }) => {
        const s = await session();
        return send(s.url, { raw: Readable.from([JSON.stringify(tooBig)]), headers: s.headers() });
      },
      status: 413,
      code: -32000,
      message: `exceeds ${MAX_BODY} bytes`,
    },
    {
      name: 'PUT',
      send: async ({ session }) =>
        send((await session()).url, {
          method: 'PUT',
          raw: '{}',
          headers: { 'content-type': 'application/json' },
        }),
      status: 405,
      code: -32000,
      message: 'Method Not Allowed',
    },
    {
      name: 'PATCH',
      send: async ({ session }) =>
        send((await session()).url, {
          method: 'PATCH',
          raw: '{}',
          headers: { 'content-type': 'application/json' },
        }),
      status: 405,
      code: -32000,
      message: 'Method Not Allowed',
    },
    // --- JSON and JSON-RPC shape ---
    {
      name: 'malformed JSON',
      send: ({ url }) => send(url, { raw: '{"jsonrpc":"2.0","id":1,"method":' }),
      status: 400,
      code: -32700,
      message: 'Parse error',
    },
    {
      name: 'empty body',
      send: ({ url }) => send(url, { raw: '' }),
      status: 400,
      code: -32700,
      message: 'Parse error',
    },
    {
      name: 'not a JSON-RPC object (a number)',
      send: ({ url }) => send(url, { raw: '42' }),
      status: 400,
      code: -32600,
      message: 'must be a JSON object',
    },
    {
      name: 'not a JSON-RPC object (null)',
      send: ({ url }) => send(url, { raw: 'null' }),
      status: 400,
      code: -32600,
      message: 'must be a JSON object',
    },
    {
      name: 'bad jsonrpc field ("1.0")',
      send: ({ url }) => send(url, { body: { ...initializeBody('2025-11-25'), jsonrpc: '1.0' } }),
      status: 400,
      code: -32600,
      message: '"jsonrpc" must be exactly "2.0"',
    },
    {
      name: 'missing jsonrpc field',
      send: async ({ session }) => (await session()).post({ id: 1, method: 'ping' }),
      status: 400,
      code: -32600,
      message: '"jsonrpc" must be exactly "2.0"',
    },
    {
      name: 'null id',
      send: async ({ session }) => (await session()).post({ jsonrpc: '2.0', id: null, method: 'ping' }),
      status: 400,
      code: -32600,
      message: '"id" must be a string or an integer',
    },
    {
      name: 'fractional id',
      send: async ({ session }) => (await session()).post({ jsonrpc: '2.0', id: 1.5, method: 'ping' }),
      status: 400,
      code: -32600,
      message: '"id" must be a string or an integer',
    },
    {
      name: 'params not an object (array)',
      send: async ({ session }) =>
        (await session()).post({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: [1, 2] }),
      status: 400,
      code: -32600,
      message: '"params" must be an object',
    },
    {
      name: 'params not an object (null)',
      send: async ({ session }) =>
        (await session()).post({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: null }),
      status: 400,
      code: -32600,
      message: '"params" must be an object',
    },
    {
      name: 'method not a string',
      send: async ({ session }) => (await session()).post({ jsonrpc: '2.0', id: 1, method: 7 }),
      status: 400,
      code: -32600,
      message: '"method" must be a non-empty string',
    },
    {
      name: 'neither request nor response',
      send: async ({ session }) => (await session()).post({ jsonrpc: '2.0', id: 1 }),
      status: 400,
      code: -32600,
      message: 'exactly one of "result" and "error"',
    },
    {
      name: 'empty batch',
      send: async ({ session }) => (await session('2025-03-26')).post([]),
      status: 400,
      code: -32600,
      message: 'empty batch',
    },
    {
      name: 'a batch with one invalid item',
      send: async ({ session }) =>
        (await session('2025-03-26')).post([ping(1), { jsonrpc: '2.0', id: null, method: 'ping' }]),
      status: 400,
      code: -32600,
      message: 'batch item 1',
    },
    // --- sessions and protocol versions ---
    {
      name: 'missing Mcp-Session-Id',
      send: ({ url }) => send(url, { body: ping(1), headers: { 'mcp-protocol-version': '2025-11-25' } }),
      status: 400,
      code: -32000,
      message: 'Mcp-Session-Id header is required',
    },
    {
      name: 'missing Mcp-Session-Id on GET',
      send: ({ url }) => send(url, { method: 'GET', headers: { accept: 'text/event-stream' } }),
      status: 400,
      code: -32000,
      message: 'Mcp-Session-Id header is required',
    },
    {
      name: 'missing Mcp-Session-Id on DELETE',
      send: ({ url }) => send(url, { method: 'DELETE' }),
      status: 400,
      code: -32000,
      message: 'Mcp-Session-Id header is required',
    },
    {
      name: 'unknown session id',
      send: ({ url }) => send(url, { body: ping(1), headers: { 'mcp-session-id': 'no-such-session' } }),
      status: 404,
      code: -32005,
      message: 'Session not found',
    },
    {
      name: 'unknown session id on GET',
      send: ({ url }) =>
        send(url, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': 'nope' } }),
      status: 404,
      code: -32005,
      message: 'Session not found',
    },
    {
      name: 'session used after DELETE',
      send: async ({ session }) => {
        const s = await session();
        await s.delete();
        return s.post(ping(1));
      },
      status: 404,
      code: -32005,
      message: 'Session not found',
    },
    {
      name: 'DELETE twice',
      send: async ({ session }) => {
        const s = await session();
        await s.delete();
        return send(s.url, { method: 'DELETE', headers: s.headers() });
      },
      status: 404,
      code: -32005,
      message: 'Session not found',
    },
    {
      name: 'unsupported MCP-Protocol-Version',
      send: async ({ session }) => (await session()).post(ping(1), { 'mcp-protocol-version': '1999-01-01' }),
      status: 400,
      code: -32000,
      message: 'unsupported MCP-Protocol-Version "1999-01-01"',
    },
    {
      name: 'batch on a 2025-06-18 session',
      send: async ({ session }) => (await session('2025-06-18')).post(batchOfPings),
      status: 400,
      code: -32600,
      message: 'batches are not allowed in protocol version 2025-06-18',
    },
    {
      name: 'batch on a 2025-11-25 session',
      send: async ({ session }) => (await session('2025-11-25')).post(batchOfPings),
      status: 400,
      code: -32600,
      message: 'batches are not allowed in protocol version 2025-11-25',
    },
    {
      name: 'initialize inside a batch',
      send: async ({ url }) => send(url, { body: [initializeBody('2025-03-26'), ping(2)] }),
      status: 400,
      code: -32600,
      message: 'initialize must not be part of a JSON-RPC batch',
    },
    {
      name: 'initialize carrying Mcp-Session-Id',
      send: async ({ session }) => (await session()).post(initializeBody('2025-11-25')),
      status: 400,
      code: -32600,
      message: 'must not carry Mcp-Session-Id',
    },
    {
      name: 'GET without Accept: text/event-stream',
      send: async ({ session }) => {
        const s = await session();
        return send(s.url, { method: 'GET', headers: s.headers({ accept: 'application/json' }) });
      },
      status: 406,
      code: -32000,
      message: 'a GET stream needs Accept: text/event-stream',
    },
    // --- JSON-RPC errors answered with HTTP 200 ---
    {
      name: 'unknown method (answered by the upstream)',
      send: async ({ session }) =>
        (await session()).post({ jsonrpc: '2.0', id: 'm1', method: 'no/such/method', params: {} }),
      status: 200,
      code: -32601,
      message: 'Method not found',
    },
    {
      name: 'initialize without protocolVersion',
      send: ({ url }) =>
        send(url, {
          body: {
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { capabilities: {}, clientInfo: { name: 'x', version: '1' } },
          },
        }),
      status: 200,
      code: -32602,
      message: '"protocolVersion"',
    },
    {
      name: 'initialize with capabilities not an object',
      send: ({ url }) =>
        send(url, {
          body: {
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: '2025-11-25', capabilities: [], clientInfo: { name: 'x' } },
          },
        }),
      status: 200,
      code: -32602,
      message: '"capabilities"',
    },
    {
      name: 'initialize without params',
      send: ({ url }) => send(url, { body: { jsonrpc: '2.0', id: 1, method: 'initialize' } }),
      status: 200,
      code: -32602,
      message: 'Invalid params',
    },
    {
      name: 'initialize at the end of a batch on a live 2025-03-26 session',
      send: async ({ session }) => {
        const s = await session('2025-03-26');
        return s.post([
          ping(1),
          { jsonrpc: '2.0', id: 2, method: 'tools/list' },
          initializeBody('2025-03-26', 3),
        ]);
      },
      status: 400,
      code: -32600,
      message: 'initialize must not be part of a JSON-RPC batch',
    },
  ];

  it.each(rows)('refuses: $name → HTTP $status / $code', async (row) => {
    const ctx: Ctx = { url, port: new URL(gw.base).port, session: (v) => Session.open(url, v) };
    const a = await row.send(ctx);
    expect(a.status, a.text).toBe(row.status);
    const e = errorOf(a);
    expect(e.code, a.text).toBe(row.code);
    expect(e.message).toContain(row.message);
    if (row.status !== 200) {
      // Transport errors are JSON-RPC error bodies with a null id.
      expect(String(a.headers['content-type'])).toMatch(/^application\/json/);
      expect(onlyMessage(a).id).toBeNull();
    }
    if (row.status === 405) expect(a.headers.allow).toBe('GET, POST, DELETE, OPTIONS');
    await expectStillServing();
  });

  it('an allowed Origin and the gateway own Host pass', async () => {
    const a = await send(url, { body: initializeBody('2025-11-25'), headers: { origin: gw.base } });
    expect(a.status).toBe(200);
    expect(a.headers['access-control-allow-origin']).toBe(gw.base);
    const b = await send(url, {
      body: initializeBody('2025-11-25'),
      headers: { host: `localhost:${new URL(gw.base).port}` },
    });
    expect(b.status).toBe(200);
  });

  it('a Content-Type with parameters (charset) is accepted', async () => {
    const a = await good.post(ping('cs'), { 'content-type': 'application/json; charset=utf-8' });
    expect(a.status).toBe(200);
    expect(onlyMessage(a)).toEqual({ jsonrpc: '2.0', id: 'cs', result: {} });
  });

  it('notifications and client responses → 202 with an empty body', async () => {
    const n = await good.post({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
    expect(n.status).toBe(202);
    expect(n.text).toBe('');
    const c = await good.post({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 'never-sent' },
    });
    expect(c.status).toBe(202);
    expect(c.text).toBe('');
    // A response to a server request nobody sent is dropped, but still acknowledged.
    const r = await good.post({ jsonrpc: '2.0', id: 'gh1.bogus', result: {} });
    expect(r.status).toBe(202);
    expect(r.text).toBe('');
    await expectStillServing();
  });

  it('a batch on a 2025-03-26 session is answered as a JSON array with the client ids', async () => {
    const s = await Session.open(url, '2025-03-26');
    const a = await s.post([
      {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'seven' } },
      },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
      {
        jsonrpc: '2.0',
        id: 'seven',
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'SEVEN' } },
      },
      { jsonrpc: '2.0', id: 8, method: 'ping' },
    ]);
    expect(a.status).toBe(200);
    expect(String(a.headers['content-type'])).toMatch(/^application\/json/);
    expect(Array.isArray(JSON.parse(a.text))).toBe(true);
    expect(a.messages).toHaveLength(3);
    const byId = new Map(a.messages.map((m) => [m.id, m]));
    expect(resultText(byId.get(7)!)).toBe('seven');
    expect(resultText(byId.get('seven')!)).toBe('SEVEN');
    expect(byId.get(8)).toEqual({ jsonrpc: '2.0', id: 8, result: {} });
    // A batch of notifications only is acknowledged like a single one.
    const n = await s.post([{ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }]);
    expect(n.status).toBe(202);
    expect(n.text).toBe('');
  });

  it('without MCP-Protocol-Version a 2025-11-25 session uses the negotiated version', async () => {
    const s = await Session.open(url, '2025-11-25');
    const a = await s.call(1, 'echo', { message: 'no header' }, { 'mcp-protocol-version': null });
    expect(a.status).toBe(200);
    expect(resultText(onlyMessage(a))).toBe('no header');
    const b = await s.post({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-protocol-version': null });
    expect(b.status).toBe(200);
    expect(((onlyMessage(b).result as Msg).tools as unknown[]).length).toBeGreaterThan(0);
  });

  // The spec requires 400 only for an unsupported version; a supported one that differs from the negotiated
  // version is tolerated (the conformance suite sends a fixed 2025-03-26), and the session's version governs.
  it('a supported MCP-Protocol-Version other than the negotiated one is tolerated', async () => {
    const s = await Session.open(url, '2025-11-25');
    const a = await s.call(1, 'echo', { message: 'older header' }, { 'mcp-protocol-version': '2025-06-18' });
    expect(a.status).toBe(200);
    expect(resultText(onlyMessage(a))).toBe('older header');
  });

  it('a second GET stream on the same session → 409; after the first closes a new one is allowed', async () => {
    const s = await Session.open(url);
    const getHeaders = s.headers({ accept: 'text/event-stream' }) as Record<string, string>;
    const first = await request(url, { method: 'GET', headers: getHeaders });
    try {
      expect(first.statusCode).toBe(200);
      expect(String(first.headers['content-type'])).toMatch(/^text\/event-stream/);
      const second = await send(url, { method: 'GET', headers: getHeaders });
      expect(second.status).toBe(409);
      const e = errorOf(second);
      expect(e.code).toBe(-32000);
      expect(e.message).toContain('already has an open GET stream');
      // POSTs on that session still work while its stream is open.
      const c = await s.call('with-stream', 'echo', { message: 'ok' });
      expect(resultText(onlyMessage(c))).toBe('ok');
    } finally {
      first.body.destroy();
    }
    let third: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 50 && third?.statusCode !== 200; i++) {
      await third?.body.text();
      await new Promise((r) => setTimeout(r, 20));
      third = await request(url, { method: 'GET', headers: getHeaders });
    }
    expect(third?.statusCode).toBe(200);
    third?.body.destroy();
    await expectStillServing();
  });

  describe('request ids are rewritten per upstream and mapped back', () => {
    const slow = (count: number) => ({ count, intervalMs: 60 });

    it('two sessions using id "1" concurrently against a slow tool each get their own answer', async () => {
      const [a, b] = await Promise.all([Session.open(url), Session.open(url)]);
      const [ra, rb] = await Promise.all([
        a.call('1', 'slow_count', slow(3)),
        b.call('1', 'slow_count', slow(5)),
      ]);
      expect(onlyMessage(ra).id).toBe('1');
      expect(onlyMessage(rb).id).toBe('1');
      expect(resultText(onlyMessage(ra))).toBe('Counted to 3.');
      expect(resultText(onlyMessage(rb))).toBe('Counted to 5.');
    });

    it('one session with two concurrent requests both using id "1" gets each its own answer', async () => {
      const s = await Session.open(url);
      const [r1, r2] = await Promise.all([
        s.call('1', 'slow_count', slow(2)),
        s.call('1', 'slow_count', slow(4)),
      ]);
      expect(onlyMessage(r1).id).toBe('1');
      expect(onlyMessage(r2).id).toBe('1');
      expect(resultText(onlyMessage(r1))).toBe('Counted to 2.');
      expect(resultText(onlyMessage(r2))).toBe('Counted to 4.');
    });

    it('ids 1 and "1" keep their JSON types', async () => {
      const s = await Session.open(url);
      const [n, str] = await Promise.all([
        s.call(1, 'slow_count', slow(2)),
        s.call('1', 'slow_count', slow(3)),
      ]);
      expect(onlyMessage(n).id).toBe(1);
      expect(onlyMessage(str).id).toBe('1');
      expect(resultText(onlyMessage(n))).toBe('Counted to 2.');
      expect(resultText(onlyMessage(str))).toBe('Counted to 3.');
    });
  });
});

describe('session ids and request ids never cross the gateway (gateway → recording upstream)', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    gw = await startGateway(singleUpstreamConfig(upstream.url));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('the gateway issues its own random session ids; the upstream never sees them, the client never sees the upstream', async () => {
    const seen: Answer[] = [];
    const track = async (p: Promise<Answer>) => {
      const a = await p;
      seen.push(a);
      return a;
    };
    const init = await track(
      send(url, {
        body: initializeBody('2025-11-25'),
        headers: { 'mcp-protocol-version': null, authorization: 'Bearer client-secret' },
      }),
    );
    const s1 = new Session(url, init.headers['mcp-session-id'] as string, '2025-11-25');
    const s2 = await Session.open(url);
    await track(s1.post({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    const call = await track(s1.call('1', 'echo', { text: 'hi' }, { authorization: 'Bearer client-secret' }));
    expect(resultText(onlyMessage(call))).toBe('hi');
    expect(onlyMessage(call).id).toBe('1');
    await track(s2.call('1', 'echo', { text: 'there' }));

    // Opaque, visible-ASCII, long enough to be unguessable (≥ 128 bits), distinct per session.
    for (const sid of [s1.id, s2.id]) {
      expect(sid).toMatch(/^[\x21-\x7e]+$/);
      expect(sid.length).toBeGreaterThanOrEqual(22);
    }
    expect(s1.id).not.toBe(s2.id);

    expect(upstream.issuedSessionIds.length).toBeGreaterThanOrEqual(2);
    const issued = new Set(upstream.issuedSessionIds);
    for (const sid of [s1.id, s2.id]) expect(issued.has(sid)).toBe(false);

    // Every request the upstream received: only its own session ids, never the client's, nor its credentials.
    for (const r of upstream.received) {
      const sid = r.headers['mcp-session-id'];
      if (sid !== undefined) expect(issued.has(String(sid))).toBe(true);
      const all = JSON.stringify(r.headers) + JSON.stringify(r.body ?? null);
      expect(all).not.toContain(s1.id);
      expect(all).not.toContain(s2.id);
      expect(all).not.toContain('client-secret');
    }
    // The client's request id "1" was rewritten for the upstream.
    const calls = upstream.received.filter((r) => (r.body as Msg | undefined)?.method === 'tools/call');
    expect(calls).toHaveLength(2);
    for (const c of calls) expect((c.body as Msg).id).not.toBe('1');

    // Nothing the client received names an upstream session.
    for (const a of seen) {
      const all = JSON.stringify(a.headers) + a.text;
      for (const u of issued) expect(all).not.toContain(u);
    }
    await s1.delete();
    await s2.delete();
  });
});
