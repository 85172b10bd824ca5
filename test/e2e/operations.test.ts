// What an operator relies on: liveness and readiness (with MCP-aware upstream probes and the drain at
// shutdown), session idle timeout and caps, and the HTTP edges of the MCP endpoint: unknown paths,
// unsupported methods, and CORS preflight. Real gateway, real upstreams, real HTTP on 127.0.0.1.

import { connect as netConnect } from 'node:net';
import { type Dispatcher, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answerAfter,
  type MisbehavingUpstream,
  startMisbehavingUpstream,
  unreachableUrl,
} from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';

type Msg = Record<string, unknown>;

const ACCEPT = 'application/json, text/event-stream';
const VERSION = '2025-11-25';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Msg | undefined;
}

async function send(
  url: string,
  opts: { method?: Dispatcher.HttpMethod; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const method = opts.method ?? 'POST';
  const defaults: Record<string, string> =
    method === 'POST' ? { accept: ACCEPT, 'content-type': 'application/json' } : {};
  const res = await request(url, {
    method,
    headers: { ...defaults, ...opts.headers },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.body.text();
  let json: Msg | undefined;
  try {
    json = text ? (JSON.parse(text) as Msg) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

const initializeBody: Msg = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'ops-test', version: '1.0.0' } },
};

async function openSession(url: string): Promise<string> {
  const a = await send(url, { body: initializeBody });
  expect(a.status, a.text).toBe(200);
  const sid = a.headers['mcp-session-id'];
  expect(typeof sid, a.text).toBe('string');
  return sid as string;
}

function inSession(sid: string): Record<string, string> {
  return { 'mcp-session-id': sid, 'mcp-protocol-version': VERSION };
}

function ping(url: string, sid: string, id = 1): Promise<Answer> {
  return send(url, { body: { jsonrpc: '2.0', id, method: 'ping' }, headers: inSession(sid) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Health {
  status: string;
  since: number;
  inFlight: number;
  lastError?: string;
}

describe('/healthz and /readyz', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    const dead = await unreachableUrl();
    gw = await startGateway(`
upstreams:
  good: { type: streamable-http, url: "${upstream.url}" }
  dead: { type: streamable-http, url: "${dead}", connect_timeout: 1s }
routes:
  - { path: /mcp, upstreams: [good] }
  - { path: /dead, upstreams: [dead] }
health: { interval: 200ms }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('/healthz answers 200 {status: ok}', async () => {
    const a = await send(`${gw.base}/healthz`, { method: 'GET' });
    expect(a.status).toBe(200);
    expect(String(a.headers['content-type'])).toMatch(/^application\/json/);
    expect(a.json).toEqual({ status: 'ok' });
  });

  it('/readyz lists each upstream: up after a probe, down with the last error for a closed port', async () => {
    let body: Msg | undefined;
    const methods = () => upstream.received.map((r) => (r.body as Msg | undefined)?.method);
    for (let i = 0; i < 50; i++) {
      const a = await send(`${gw.base}/readyz`, { method: 'GET' });
      expect(a.status).toBe(200);
      body = a.json;
      const ups = body?.upstreams as Record<string, Health> | undefined;
      if (ups?.good?.status === 'up' && ups?.dead?.status === 'down' && methods().includes('tools/list'))
        break;
      await sleep(100);
    }
    expect(body?.status).toBe('ready');
    const ups = body?.upstreams as { good: Health; dead: Health } | undefined;
    if (!ups) throw new Error('/readyz listed no upstreams');
    const { good, dead } = ups;
    expect(good).toMatchObject({ status: 'up', inFlight: 0 });
    expect(good.lastError).toBeUndefined();
    expect(dead).toMatchObject({ status: 'down', inFlight: 0 });
    expect(dead.lastError).toContain('upstream "dead"');
    expect(dead.lastError).toMatch(/ECONNREFUSED|unreachable/);
    expect(typeof dead.since).toBe('number');
    // The probe is real MCP: the healthy upstream saw an initialize and a tools/list from the gateway.
    expect(methods()).toContain('initialize');
    expect(methods()).toContain('tools/list');
  });
});

describe('/readyz during a graceful stop', () => {
  let upstream: MisbehavingUpstream;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: { slow: answerAfter(800, 'slow done') } });
  });
  afterAll(async () => {
    await upstream?.close();
  });

  /**
   * Sends a slow tools/call on a raw connection, begins the stop while it is in flight, then sends
   * GET /readyz on the same (busy, hence still open) connection. Returns both raw answers.
   */
  async function readyzDuringStop(gw: RunningGateway, sid: string): Promise<string> {
    const port = Number(new URL(gw.base).port);
    const host = `127.0.0.1:${port}`;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'slow', arguments: {} },
    });
    const sock = netConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', () => {});
    const seen = upstream.received.length;
    sock.write(
      `POST /mcp HTTP/1.1\r\nhost: ${host}\r\naccept: ${ACCEPT}\r\ncontent-type: application/json\r\n` +
        `mcp-session-id: ${sid}\r\nmcp-protocol-version: ${VERSION}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const hasCall = () =>
      upstream.received.slice(seen).some((r) => (r.body as Msg | undefined)?.method === 'tools/call');
    for (let i = 0; i < 200 && !hasCall(); i++) await sleep(5);
    expect(hasCall()).toBe(true);
    const stopping = gw.close();
    await sleep(50);
    sock.write(`GET /readyz HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
    await Promise.race([closed, sleep(5000)]);
    sock.destroy();
    await stopping;
    return Buffer.concat(chunks).toString('utf8');
  }

  it('answers 503 once stop() began, while the call in flight still completes', async () => {
    const gw = await startGateway(singleUpstreamConfig(upstream.url, 'shutdown_timeout: 10s'));
    try {
      const sid = await openSession(`${gw.base}/mcp`);
      const raw = await readyzDuringStop(gw, sid);
      // Two answers in order on the one connection: the call's, then the probe's.
      const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      expect(statuses).toEqual([200, 503]);
      expect(raw).toContain('slow done');
      // The probe's answer closes the connection: a load balancer stops routing to this instance.
      expect(raw.slice(raw.lastIndexOf('HTTP/1.1 ')).toLowerCase()).toContain('connection: close');
    } finally {
      await gw.close();
    }
  });

  // Regression (was a bug in src/app.ts stop() + src/http/server.ts /readyz): stop() sets `draining` and calls edge.close()
  // in the same tick, and fastify is built with `return503OnClosing: true`, so once closing, fastify
  // answers every request itself with its generic body {"error":"Service Unavailable",...} before the
  // /readyz handler runs. The handler's {status: 'draining', upstreams} answer (isDraining()) is never
  // observable. Expected: /readyz during the drain says {status: 'draining'} (e.g. let /readyz bypass
  // return503OnClosing, or set draining and wait a readiness period before closing the listener).
  it('says {status: "draining"} in the 503 body', async () => {
    const gw = await startGateway(singleUpstreamConfig(upstream.url, 'shutdown_timeout: 10s'));
    try {
      const sid = await openSession(`${gw.base}/mcp`);
      const raw = await readyzDuringStop(gw, sid);
      const second = raw.slice(raw.lastIndexOf('HTTP/1.1 '));
      expect(second).toMatch(/^HTTP\/1\.1 503 /);
      // Today: {"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}
      const json = JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4)) as Msg;
      expect(json.status).toBe('draining');
    } finally {
      await gw.close();
    }
  });
});

describe('session idle timeout', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    gw = await startGateway(singleUpstreamConfig(upstream.url, 'sessions: { idle_timeout: 300ms }'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  /** Opens the session's GET stream; resolves once the gateway answered 200 (the stream is attached). */
  async function openStream(sid: string): Promise<Dispatcher.ResponseData> {
    const res = await request(url, {
      method: 'GET',
      headers: { accept: 'text/event-stream', ...inSession(sid) },
    });
    expect(res.statusCode).toBe(200);
    res.body.on('error', () => {});
    return res;
  }

  it('a session unused for longer than idle_timeout is gone (404), and its upstream session ended', async () => {
    const sid = await openSession(url);
    // Upstream sessions open on first use: a call opens one (ping is answered by the gateway itself).
    const call = await send(url, {
      body: {
        jsonrpc: '2.0',
        id: 'c',
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'x' } },
      },
      headers: inSession(sid),
    });
    expect(call.status, call.text).toBe(200);
    const upstreamSid = upstream.issuedSessionIds.at(-1);
    await sleep(450);
    const a = await ping(url, sid, 2);
    expect(a.status).toBe(404);
    expect((a.json?.error as Msg | undefined)?.code).toBe(-32005);
    // The gateway ended its upstream session too (DELETE with the upstream's id).
    await sleep(50);
    expect(
      upstream.received.some((r) => r.httpMethod === 'DELETE' && r.headers['mcp-session-id'] === upstreamSid),
    ).toBe(true);
  });

  it('a session used more often than idle_timeout stays alive', async () => {
    const sid = await openSession(url);
    for (let i = 0; i < 5; i++) {
      await sleep(150);
      expect((await ping(url, sid, i)).status).toBe(200);
    }
  });

  it('a session with an open GET stream survives past idle_timeout', async () => {
    const sid = await openSession(url);
    const stream = await openStream(sid);
    try {
      await sleep(1300); // past the timeout and past a sweep (at least every second)
      const a = await ping(url, sid, 2);
      expect(a.status, a.text).toBe(200);
    } finally {
      stream.body.destroy();
    }
  });

  // Regression (was a bug in src/gateway/sessions.ts get() and sweep(), src/gateway/session.ts detachStream()): idleness is
  // measured from `lastSeenAt`, which only requests update; the GET request that opened a stream set it
  // when the stream began. When a stream held longer than idle_timeout closes (a network blip, a proxy
  // timeout), the session is at once older than idle_timeout and is expired, so the client's immediate
  // reconnect of its GET stream (or its next POST) gets 404. The documented rule is "no request and no
  // open stream for this long". Expected: detaching a stream refreshes lastSeenAt, so the idle period
  // starts when the stream closed.
  it('a session whose long-held GET stream just closed can reconnect its stream at once', async () => {
    const sid = await openSession(url);
    const stream = await openStream(sid);
    await sleep(500);
    stream.body.destroy();
    await sleep(30); // the gateway sees the close
    const again = await request(url, {
      method: 'GET',
      headers: { accept: 'text/event-stream', ...inSession(sid) },
    });
    again.body.on('error', () => {});
    try {
      expect(again.statusCode).toBe(200);
    } finally {
      again.body.destroy();
    }
  });
});

describe('session cap', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    gw = await startGateway(singleUpstreamConfig(upstream.url, 'sessions: { max_sessions: 2 }'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('the initialize over max_sessions gets 503 / -32006; after a DELETE a new session is accepted', async () => {
    const first = await openSession(url);
    const second = await openSession(url);
    const initializesBefore = upstream.initializeCount;
    const third = await send(url, { body: initializeBody });
    expect(third.status).toBe(503);
    expect(third.headers['mcp-session-id']).toBeUndefined();
    const err = third.json?.error as { code: number; message: string } | undefined;
    expect(err?.code).toBe(-32006);
    expect(err?.message).toMatch(/session limit reached \(2/);
    // Refused before anything was opened upstream.
    expect(upstream.initializeCount).toBe(initializesBefore);
    // The sessions already open are unaffected.
    expect((await ping(url, first)).status).toBe(200);
    expect((await ping(url, second)).status).toBe(200);

    const del = await send(url, { method: 'DELETE', headers: inSession(first) });
    expect(del.status).toBe(200);
    expect((await ping(url, first)).status).toBe(404);
    const fourth = await openSession(url);
    expect((await ping(url, fourth)).status).toBe(200);
    // Full again.
    expect((await send(url, { body: initializeBody })).status).toBe(503);
  });
});

describe('HTTP edges of the MCP endpoint', () => {
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

  it.each(['/nope', '/mcp/extra', '/mcpx', '/'])('unknown path %s → 404 JSON', async (path) => {
    const a = await send(`${gw.base}${path}`, { method: 'GET' });
    expect(a.status).toBe(404);
    expect(String(a.headers['content-type'])).toMatch(/^application\/json/);
    expect(a.json).toEqual({ error: 'not_found', message: `No route for GET ${path}` });
  });

  it('an unknown path by POST is 404 JSON too, and the query string is not echoed', async () => {
    const a = await send(`${gw.base}/other?token=abc`, { body: initializeBody });
    expect(a.status).toBe(404);
    expect(a.json).toEqual({ error: 'not_found', message: 'No route for POST /other' });
  });

  it.each(['PUT', 'PATCH'] as const)(
    '%s on the MCP path → 405 with Allow and a JSON-RPC error',
    async (method) => {
      const a = await send(url, {
        method,
        body: initializeBody,
        headers: { 'content-type': 'application/json' },
      });
      expect(a.status).toBe(405);
      expect(a.headers.allow).toBe('GET, POST, DELETE, OPTIONS');
      expect((a.json?.error as Msg | undefined)?.code).toBe(-32000);
    },
  );

  it('HEAD on the MCP path → 405 with Allow and no body', async () => {
    const a = await send(url, { method: 'HEAD' });
    expect(a.status).toBe(405);
    expect(a.headers.allow).toBe('GET, POST, DELETE, OPTIONS');
    expect(a.text).toBe('');
  });

  it('CORS preflight from an allowed origin → 204 with the access-control headers', async () => {
    const origin = gw.base; // the listen address is an allowed origin by default
    const a = await send(url, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, mcp-session-id',
      },
    });
    expect(a.status).toBe(204);
    expect(a.headers['access-control-allow-origin']).toBe(origin);
    expect(String(a.headers['access-control-allow-methods'])).toContain('POST');
    expect(String(a.headers['access-control-allow-methods'])).toContain('DELETE');
    const allowHeaders = String(a.headers['access-control-allow-headers']);
    for (const h of [
      'content-type',
      'mcp-session-id',
      'mcp-protocol-version',
      'authorization',
      'last-event-id',
    ])
      expect(allowHeaders).toContain(h);
    expect(String(a.headers['access-control-expose-headers'])).toContain('mcp-session-id');
    expect(a.headers.vary).toBe('Origin');
    expect(a.headers['access-control-max-age']).toBe('600');
  });

  it('an actual request from the allowed origin carries CORS headers exposing Mcp-Session-Id', async () => {
    const a = await send(url, { body: initializeBody, headers: { origin: gw.base } });
    expect(a.status).toBe(200);
    expect(a.headers['access-control-allow-origin']).toBe(gw.base);
    expect(String(a.headers['access-control-expose-headers'])).toContain('mcp-session-id');
  });

  it('CORS preflight from a disallowed origin → 403 without allowed methods or headers', async () => {
    const a = await send(url, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(a.status).toBe(403);
    expect(a.headers['access-control-allow-methods']).toBeUndefined();
    expect(a.headers['access-control-allow-headers']).toBeUndefined();
    expect((a.json?.error as Msg | undefined)?.message).toContain(
      'Origin "https://evil.example" is not allowed',
    );
  });

  // Regression (was a bug in src/http/server.ts, corsHeaders() used by setErrorHandler): corsHeaders() echoes whatever Origin
  // the request carries into Access-Control-Allow-Origin without checking it against the origin policy.
  // The onRequest hook refuses a disallowed Origin with 403, and the error handler then adds
  // `access-control-allow-origin: https://evil.example` (+ expose-headers) to that 403, so a page on a
  // disallowed origin may read the gateway's error answers. Expected: CORS headers only for allowed origins.
  it('the 403 to a disallowed origin does not grant it CORS access', async () => {
    for (const method of ['OPTIONS', 'POST'] as const) {
      const a = await send(url, {
        method,
        headers: { origin: 'https://evil.example' },
        ...(method === 'POST' ? { body: initializeBody } : {}),
      });
      expect(a.status).toBe(403);
      expect(a.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('OPTIONS without an Origin → 403', async () => {
    const a = await send(url, { method: 'OPTIONS' });
    expect(a.status).toBe(403);
  });
});
