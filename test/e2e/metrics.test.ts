// /metrics of a real gateway in front of real upstreams, driven by the official SDK client and raw HTTP:
// exact counts after a scripted sequence (ok, tool error, upstream JSON-RPC error, ACL refusal, unknown
// tool, upstream timeout, upstream down, bad request), histogram counts, gauges; the cardinality bounds
// under 10,000 distinct resource URIs and unknown tool names; /metrics on the admin listener; the latency
// headers on and off.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureHandle, startFixture } from '../fixtures/fixture-server.ts';
import {
  answerAfter,
  type MisbehavingUpstream,
  startMisbehavingUpstream,
  type ToolCall,
  unreachableUrl,
} from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { type Exposition, parseExposition, sample, samples } from '../helpers/prometheus.ts';
import { rpcError, waitFor } from '../helpers/sdk.ts';

const ACCEPT = 'application/json, text/event-stream';
const VERSION = '2025-11-25';

function answer(call: ToolCall, body: Record<string, unknown>): void {
  const text = JSON.stringify({ jsonrpc: '2.0', id: call.id, ...body });
  call.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  call.res.end(text);
}

/** An upstream whose tools fail: an isError result, a JSON-RPC error, a slow answer. */
function failingUpstream(): Promise<MisbehavingUpstream> {
  return startMisbehavingUpstream({
    tools: {
      fail: (call) => answer(call, { result: { content: [{ type: 'text', text: 'no' }], isError: true } }),
      rpcfail: (call) => answer(call, { error: { code: -32050, message: 'upstream refuses' } }),
      slow: answerAfter(2_000),
    },
  });
}

async function scrape(url: string): Promise<Exposition> {
  const res = await request(url);
  const text = await res.body.text();
  expect(res.statusCode, text).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(text);
}

async function post(
  url: string,
  body: unknown,
  sid?: string,
): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> | undefined }> {
  const res = await request(url, {
    method: 'POST',
    headers: {
      accept: ACCEPT,
      'content-type': 'application/json',
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, json };
}

async function openSession(url: string): Promise<string> {
  const r = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: VERSION,
      capabilities: {},
      clientInfo: { name: 'metrics-test', version: '1' },
    },
  });
  expect(r.status).toBe(200);
  return String(r.headers['mcp-session-id']);
}

const clients: Client[] = [];
async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'metrics-test', version: '1.0.0' }, { capabilities: {} });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  clients.push(client);
  return client;
}

describe('metrics after a scripted sequence of calls', () => {
  let a: FixtureHandle;
  let b: MisbehavingUpstream;
  let gw: RunningGateway;
  let s: Exposition;

  beforeAll(async () => {
    a = await startFixture({
      name: 'a',
      tools: ['echo', 'secret'],
      prompts: ['greet'],
      resources: ['mem://static/one'],
      templates: ['mem://items/{id}'],
    });
    b = await failingUpstream();
    gw = await startGateway(`
upstreams:
  a: { type: streamable-http, url: "${a.url}" }
  b: { type: streamable-http, url: "${b.url}", request_timeout: 300ms }
  down: { type: streamable-http, url: "${await unreachableUrl()}" }
routes:
  - path: /mcp
    upstreams: [a, b]
    acl: { tools: { "a:secret": { allow: [admins] } } }
  - path: /down
    upstreams: [down]
health: { interval: 0 }
`);
    const c = await connect(`${gw.base}/mcp`);
    await c.listTools();
    // b has an echo too: a's is exposed as a__echo, and labelled by its own name.
    await c.callTool({ name: 'a__echo', arguments: { text: 'x' } });
    await c.callTool({ name: 'a__echo', arguments: { text: 'y' } });
    expect((await c.callTool({ name: 'fail', arguments: {} })).isError).toBe(true);
    expect((await rpcError(c.callTool({ name: 'rpcfail', arguments: {} }))).code).toBe(-32050);
    expect((await rpcError(c.callTool({ name: 'secret', arguments: {} }))).code).toBe(-32602);
    expect((await rpcError(c.callTool({ name: 'nope', arguments: {} }))).code).toBe(-32602);
    expect((await rpcError(c.callTool({ name: 'slow', arguments: {} }))).code).toBe(-32003);
    await c.readResource({ uri: 'mem://static/one' });
    await c.readResource({ uri: 'mem://items/1' });
    await c.readResource({ uri: 'mem://items/2' });
    await c.getPrompt({ name: 'greet', arguments: {} });
    expect((await post(`${gw.base}/mcp`, '{"jsonrpc":')).status).toBe(400);
    await expect(connect(`${gw.base}/down`)).rejects.toThrow();
    s = await scrape(`${gw.base}/metrics`);
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await gw?.close();
    await a?.close();
    await b?.close();
  });

  const route = '/mcp';
  const call = { route, mcp_method: 'tools/call' };

  it('counts each call once, with its server, target, outcome and codes', () => {
    const calls = samples(s, 'gatehouse_requests_total', call).map((x) => x.labels);
    expect(calls).toHaveLength(6);
    const count = (labels: Record<string, string>) =>
      sample(s, 'gatehouse_requests_total', { ...call, ...labels });
    expect(
      count({ mcp_server: 'a', tool_name: 'echo', outcome: 'ok', response_code: '200', rpc_code: '' }),
    ).toBe(2);
    // A tool result reporting a failure is an answer (ok), from an upstream that answered HTTP 200.
    expect(count({ mcp_server: 'b', tool_name: 'fail', outcome: 'ok', rpc_code: '' })).toBe(1);
    // The upstream's own error code is its response code; errors the gateway makes have none.
    expect(
      count({
        mcp_server: 'b',
        tool_name: 'rpcfail',
        outcome: 'error',
        rpc_code: '-32050',
        upstream_response_code: '-32050',
      }),
    ).toBe(1);
    expect(count({ upstream_response_code: '' })).toBe(6);
    expect(count({ mcp_server: 'a', tool_name: 'secret', outcome: 'denied', rpc_code: '-32602' })).toBe(1);
    // The unknown tool: no server, no tool label (a refused name never becomes a label value).
    expect(count({ mcp_server: '', tool_name: '', outcome: 'error', rpc_code: '-32602' })).toBe(1);
    expect(count({ mcp_server: 'b', tool_name: 'slow', outcome: 'upstream_error', rpc_code: '-32003' })).toBe(
      1,
    );
    expect(sample(s, 'gatehouse_requests_total', call)).toBe(7);
    const tools = new Set(calls.map((l) => l.tool_name));
    expect([...tools].sort()).toEqual(['', 'echo', 'fail', 'rpcfail', 'secret', 'slow']);
  });

  it('counts lists, reads (by URI or template), prompts, initialize, bad requests and a down upstream', () => {
    const n = (labels: Record<string, string>) => sample(s, 'gatehouse_requests_total', labels);
    expect(n({ route, mcp_method: 'initialize', outcome: 'ok' })).toBe(1);
    expect(n({ route, mcp_method: 'tools/list', outcome: 'ok' })).toBe(1);
    const read = { route, mcp_method: 'resources/read', mcp_server: 'a', outcome: 'ok' };
    expect(n({ ...read, resource_uri: 'mem://static/one' })).toBe(1);
    expect(n({ ...read, resource_uri: 'mem://items/{id}' })).toBe(2);
    expect(n({ route, mcp_method: 'resources/read' })).toBe(3);
    expect(
      n({ route, mcp_method: 'prompts/get', mcp_server: 'a', prompt_name: 'greet', outcome: 'ok' }),
    ).toBe(1);
    expect(n({ route, mcp_method: '', outcome: 'error', response_code: '400', rpc_code: '-32700' })).toBe(1);
    expect(
      n({ route: '/down', mcp_method: 'initialize', mcp_server: 'down', outcome: 'upstream_error' }),
    ).toBe(1);
    // Nothing else was counted.
    expect(n({})).toBe(7 + 1 + 1 + 3 + 1 + 1 + 1);
  });

  it('counts refusals by reason', () => {
    expect(samples(s, 'gatehouse_denied_total')).toHaveLength(1);
    expect(sample(s, 'gatehouse_denied_total', { route, mcp_server: 'a', reason: 'acl' })).toBe(1);
  });

  it('has a duration histogram per series, and an upstream one for calls that reached an upstream', () => {
    const echo = { ...call, mcp_server: 'a', tool_name: 'echo', outcome: 'ok' };
    expect(sample(s, 'gatehouse_request_duration_seconds_count', echo)).toBe(2);
    expect(sample(s, 'gatehouse_request_duration_seconds_bucket', { ...echo, le: '+Inf' })).toBe(2);
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_count', echo)).toBe(2);
    // The timeout: waited ~300ms for the upstream.
    const slow = { ...call, mcp_server: 'b', tool_name: 'slow' };
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_bucket', { ...slow, le: '0.25' })).toBe(0);
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_bucket', { ...slow, le: '1' })).toBe(1);
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_sum', slow)).toBeGreaterThanOrEqual(0.3);
    // Refusals and local answers never reached an upstream.
    expect(
      sample(s, 'gatehouse_upstream_request_duration_seconds_count', { ...call, tool_name: 'secret' }),
    ).toBe(0);
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_count', { ...call, tool_name: '' })).toBe(
      0,
    );
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_count', { mcp_method: 'tools/list' })).toBe(
      0,
    );
    // Every answered request is in the duration histogram.
    expect(sample(s, 'gatehouse_request_duration_seconds_count')).toBe(sample(s, 'gatehouse_requests_total'));
  });

  it('counts bytes in and out', () => {
    const echo = { ...call, mcp_server: 'a', tool_name: 'echo' };
    expect(sample(s, 'gatehouse_request_bytes_total', echo)).toBeGreaterThan(2 * 60);
    expect(sample(s, 'gatehouse_response_bytes_total', echo)).toBeGreaterThan(2 * 40);
  });

  it('reports upstream health, sessions and the process', () => {
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'a' })).toBe(1);
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'b' })).toBe(1);
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'down' })).toBe(0);
    expect(sample(s, 'gatehouse_upstream_in_flight', { upstream: 'a' })).toBe(0);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/mcp' })).toBe(1);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/down' })).toBe(0);
    expect(samples(s, 'gatehouse_stdio_processes')).toHaveLength(0);
    expect(s.types.get('process_cpu_user_seconds_total')).toBe('counter');
  });

  it("reports the audit log's figures (audit is on by default)", async () => {
    let now = s;
    await waitFor(async () => {
      now = await scrape(`${gw.base}/metrics`);
      return sample(now, 'gatehouse_audit_written_total') >= sample(s, 'gatehouse_requests_total');
    }, 'the audit records written');
    const sinks = samples(now, 'gatehouse_audit_written_total').map((x) => x.labels.sink);
    expect(sinks).toHaveLength(1);
    expect(sample(now, 'gatehouse_audit_queue_depth', { sink: sinks[0]! })).toBe(0);
    expect(sample(now, 'gatehouse_audit_dropped_total')).toBe(0);
    expect(sample(now, 'gatehouse_audit_lost_total')).toBe(0);
    expect(sample(now, 'gatehouse_audit_accepting')).toBe(1);
  });

  it('shows a call in flight', async () => {
    const c = clients[0]!;
    const pending = rpcError(c.callTool({ name: 'slow', arguments: {} }));
    await new Promise((r) => setTimeout(r, 100));
    const during = await scrape(`${gw.base}/metrics`);
    expect(sample(during, 'gatehouse_upstream_in_flight', { upstream: 'b' })).toBe(1);
    expect((await pending).code).toBe(-32003);
  });

  it('adds no latency headers by default', async () => {
    const sid = await openSession(`${gw.base}/mcp`);
    const r = await post(
      `${gw.base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'fail' } },
      sid,
    );
    expect(r.json?.result).toBeDefined();
    expect(r.headers['x-gatehouse-latency']).toBeUndefined();
    expect(r.headers['x-gatehouse-upstream-latency']).toBeUndefined();
  });
});

describe('cardinality', () => {
  let a: FixtureHandle;
  let gw: RunningGateway;

  beforeAll(async () => {
    a = await startFixture({ name: 'a', tools: ['echo'], templates: ['mem://items/{id}'] });
    gw = await startGateway(`
upstreams:
  a: { type: streamable-http, url: "${a.url}" }
routes:
  - path: /res
    upstreams: [a]
health: { interval: 0 }
metrics: { max_label_values: 50 }
`);
  });

  afterAll(async () => {
    await gw?.close();
    await a?.close();
  });

  it('stays bounded under 10,000 distinct resource URIs and 500 unknown tool names', async () => {
    const url = `${gw.base}/res`;
    const sid = await openSession(url);
    const run = async (n: number, body: (i: number) => unknown) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < n) {
            const r = await post(url, body(next++), sid);
            expect(r.status).toBe(200);
          }
        }),
      );
    };
    const read = (uri: string, id: number) => ({
      jsonrpc: '2.0',
      id,
      method: 'resources/read',
      params: { uri },
    });
    await run(5_000, (i) => read(`mem://items/${i}`, i));
    await run(5_000, (i) => read(`rnd://${crypto.randomUUID()}`, i));
    await run(500, (i) => ({
      jsonrpc: '2.0',
      id: i,
      method: 'tools/call',
      params: { name: `tool-${i}-${crypto.randomUUID()}` },
    }));

    const s = await scrape(`${gw.base}/metrics`);
    const reads = samples(s, 'gatehouse_requests_total', { mcp_method: 'resources/read' });
    expect(sample(s, 'gatehouse_requests_total', { mcp_method: 'resources/read' })).toBe(10_000);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'mem://items/{id}', outcome: 'ok' })).toBe(
      5_000,
    );
    // 50 values per label: the template, 49 URI prefixes, then "__other__".
    const uris = new Set(reads.map((x) => x.labels.resource_uri));
    expect(uris.size).toBe(51);
    expect(uris.has('__other__')).toBe(true);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: '__other__' })).toBe(5_000 - 49);
    expect(sample(s, 'gatehouse_metrics_label_overflow_total', { label: 'resource_uri' })).toBe(5_000 - 49);
    expect(reads).toHaveLength(51);
    expect(
      samples(s, 'gatehouse_request_duration_seconds_count', { mcp_method: 'resources/read' }),
    ).toHaveLength(51);
    // Unknown tools: one series, no tool label value.
    const calls = samples(s, 'gatehouse_requests_total', { mcp_method: 'tools/call' });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.labels).toMatchObject({ tool_name: '', outcome: 'error', rpc_code: '-32602' });
    expect(calls[0]!.value).toBe(500);
    // The whole exposition stays small.
    expect(s.samples.filter((x) => x.name.startsWith('gatehouse_')).length).toBeLessThan(3_000);
  }, 180_000);
});

describe('serving', () => {
  let up: MisbehavingUpstream;
  let dir: string;
  const running: RunningGateway[] = [];

  beforeAll(async () => {
    up = await startMisbehavingUpstream();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-metrics-'));
  });

  afterAll(async () => {
    await Promise.allSettled(running.map((g) => g.close()));
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(extra: string): Promise<RunningGateway> {
    const g = await startGateway(`
upstreams:
  up: { type: streamable-http, url: "${up.url}" }
routes:
  - path: /mcp
    upstreams: [up]
health: { interval: 0 }
${extra}`);
    running.push(g);
    return g;
  }

  it('on the admin listener when configured (and then not on the main one)', async () => {
    const g = await gateway(`
api_keys: { store: "${join(dir, 'keys.db')}" }
admin: { listen: { host: 127.0.0.1, port: 0 } }
metrics: { listener: admin, path: /prom }
`);
    const sid = await openSession(`${g.base}/mcp`);
    await post(
      `${g.base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } },
      sid,
    );
    const admin = g.gateway.adminUrl!.replace('localhost', '127.0.0.1');
    const s = await scrape(`${admin}/prom`);
    expect(
      sample(s, 'gatehouse_requests_total', {
        mcp_method: 'tools/call',
        mcp_server: 'up',
        tool_name: 'echo',
      }),
    ).toBe(1);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/mcp' })).toBe(1);
    expect((await request(`${g.base}/prom`)).statusCode).toBe(404);
    expect((await request(`${g.base}/metrics`)).statusCode).toBe(404);
    expect((await request(`${admin}/metrics`)).statusCode).toBe(404);
  });

  it('counts the processes of a stdio upstream', async () => {
    const fixture = fileURLToPath(new URL('../fixtures/stdio-server.ts', import.meta.url));
    const g = await startGateway(`
upstreams:
  fx: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(fixture)}] }
routes:
  - path: /mcp
    upstreams: [fx]
health: { interval: 0 }
`);
    running.push(g);
    // The catalogue's own process lists the tools.
    await waitFor(
      async () => sample(await scrape(`${g.base}/metrics`), 'gatehouse_stdio_processes') === 1,
      'the catalogue',
    );
    const sid = await openSession(`${g.base}/mcp`);
    await post(
      `${g.base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } },
      sid,
    );
    let s = await scrape(`${g.base}/metrics`);
    expect(sample(s, 'gatehouse_stdio_processes', { upstream: 'fx' })).toBe(2);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/mcp' })).toBe(1);
    // Ending the session ends its process.
    await request(`${g.base}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
    await waitFor(
      async () => sample(await scrape(`${g.base}/metrics`), 'gatehouse_stdio_processes') === 1,
      'the exit',
    );
    s = await scrape(`${g.base}/metrics`);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/mcp' })).toBe(0);
  });

  it('nowhere when disabled; latency headers on JSON answers when configured', async () => {
    const g = await gateway('metrics: { enabled: false, latency_headers: true }');
    expect((await request(`${g.base}/metrics`)).statusCode).toBe(404);
    const sid = await openSession(`${g.base}/mcp`);
    const called = await post(
      `${g.base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } },
      sid,
    );
    expect(called.json?.result).toBeDefined();
    const own = Number(called.headers['x-gatehouse-latency']);
    const upstream = Number(called.headers['x-gatehouse-upstream-latency']);
    expect(String(called.headers['x-gatehouse-latency'])).toMatch(/^\d+\.\d{3}$/);
    expect(String(called.headers['x-gatehouse-upstream-latency'])).toMatch(/^\d+\.\d{3}$/);
    expect(own).toBeGreaterThan(0);
    expect(upstream).toBeGreaterThan(0);
    // An answer of the gateway's own (a cached list page): its own latency, no upstream one.
    const listed = await post(`${g.base}/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sid);
    expect(listed.json?.result).toBeDefined();
    expect(String(listed.headers['x-gatehouse-latency'])).toMatch(/^\d+\.\d{3}$/);
    expect(listed.headers['x-gatehouse-upstream-latency']).toBeUndefined();
  });

  it('latency headers measure the upstream wait, and are not on streamed answers', async () => {
    const slow = await startMisbehavingUpstream({
      tools: {
        wait: answerAfter(150),
        streamed: (call) => {
          call.res.writeHead(200, { 'content-type': 'text/event-stream' });
          call.res.end(
            `data: ${JSON.stringify({ jsonrpc: '2.0', id: call.id, result: { content: [] } })}\n\n`,
          );
        },
      },
    });
    let g: RunningGateway | undefined;
    try {
      g = await startGateway(`
upstreams:
  up: { type: streamable-http, url: "${slow.url}" }
routes:
  - path: /mcp
    upstreams: [up]
health: { interval: 0 }
metrics: { latency_headers: true }
`);
      const sid = await openSession(`${g.base}/mcp`);
      const waited = await post(
        `${g.base}/mcp`,
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'wait' } },
        sid,
      );
      expect(Number(waited.headers['x-gatehouse-upstream-latency'])).toBeGreaterThanOrEqual(145);
      expect(Number(waited.headers['x-gatehouse-latency'])).toBeLessThan(145);
      const streamed = await request(`${g.base}/mcp`, {
        method: 'POST',
        headers: { accept: ACCEPT, 'content-type': 'application/json', 'mcp-session-id': sid },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'streamed' } }),
      });
      expect(streamed.headers['content-type']).toMatch(/^text\/event-stream/);
      await streamed.body.text();
      expect(streamed.headers['x-gatehouse-latency']).toBeUndefined();
    } finally {
      await g?.close();
      await slow.close();
    }
  });
});
