// Tracing end to end: the official SDK client through the gateway to real upstreams of every kind
// (Streamable HTTP and legacy SSE servers on the official SDK that record the trace context they get, a
// REST API, a stdio process), spans exported over OTLP/HTTP to an in-process receiver. W3C trace context
// from the client (HTTP headers, params._meta) continues through the gateway's spans into each upstream,
// including across a tool chain that comes back through the gateway; with tracing off it is passed on
// unchanged; a dead collector never fails a call.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ExchangeEvent } from '../../src/telemetry/events.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../fixtures/otlp-receiver.ts';
import { type RestEcho, startRestEcho } from '../fixtures/rest-echo.ts';
import { type SeenCall, startTracedUpstream, type TracedUpstream } from '../fixtures/traced-upstream.ts';
import { rpcError, textOf, waitFor } from '../helpers/sdk.ts';

const STDIO_FIXTURE = fileURLToPath(new URL('../fixtures/stdio-server.ts', import.meta.url));

interface Running {
  gateway: Gateway;
  base: string;
  events: ExchangeEvent[];
  close(): Promise<void>;
}

/** A gateway with an exchange sink of the test's (to read each exchange's trace id, as audit does). */
async function start(
  yaml: string,
  env: NodeJS.ProcessEnv = {},
  logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' }),
): Promise<Running> {
  const config = parseConfig(yaml, 'tracing.yaml', env);
  config.listen.port = 0;
  config.audit.enabled = false; // nothing written into the working tree
  const events: ExchangeEvent[] = [];
  const gateway = await createGateway(
    { config, file: 'tracing.yaml', baseDir: process.cwd(), env },
    {
      logger,
      sink: { emit: (e) => events.push(e) },
    },
  );
  const base = (await gateway.start()).replace('localhost', '127.0.0.1');
  return { gateway, base, events, close: () => gateway.stop() };
}

function upstreamsYaml(a: TracedUpstream, b: TracedUpstream, legacy: TracedUpstream, api: RestEcho): string {
  return `
upstreams:
  alpha: { type: streamable-http, url: "${a.url}" }
  beta: { type: streamable-http, url: "${b.url}" }
  legacy: { type: sse, url: "${legacy.sseUrl}" }
  api:
    type: rest
    base_url: "${api.origin}/api"
    tools:
      - name: get-order
        method: GET
        path: /echo/orders/{orderId}
        parameters: [{ name: orderId, in: path, required: true, schema: { type: string } }]
  local:
    type: stdio
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(STDIO_FIXTURE)}]
routes:
  - path: /mcp
    upstreams: [alpha, beta, legacy, api, local]
    tools: { prefix: always }
health: { interval: 0 }
audit: { enabled: false }
`;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** A client span's context, as a client would send it. */
function clientContext(sampled = true): { traceId: string; spanId: string; traceparent: string } {
  const traceId = hex(16);
  const spanId = hex(8);
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}` };
}

async function connect(base: string, headers: Record<string, string> = {}): Promise<Client> {
  const c = new Client({ name: 'tracing-test', version: '1.0.0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } }));
  return c;
}

function parseTp(tp: unknown): { traceId: string; parentId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(tp));
  if (!m) throw new Error(`not a version-00 traceparent: ${String(tp)}`);
  return { traceId: m[1]!, parentId: m[2]!, flags: m[3]! };
}

function lastCall(u: TracedUpstream, tool: string): SeenCall {
  const found = u.seen.filter((s) => s.tool === tool).at(-1);
  if (!found) throw new Error(`upstream never saw a call of ${tool}`);
  return found;
}

describe('tracing on: spans, and the trace context through the gateway', () => {
  let receiver: OtlpReceiver;
  let alpha: TracedUpstream;
  let beta: TracedUpstream;
  let legacy: TracedUpstream;
  let api: RestEcho;
  let gw: Running;

  const ofTrace = (traceId: string) => (s: ReceivedSpan) => s.traceId === traceId;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    [alpha, beta, legacy, api] = await Promise.all([
      startTracedUpstream('alpha'),
      startTracedUpstream('beta'),
      startTracedUpstream('gamma'),
      startRestEcho(),
    ]);
    gw = await start(
      `
tracing:
  enabled: true
  endpoint: "${receiver.url}"
  headers: { x-collector-key: { env: COLLECTOR_KEY } }
  service_name: gatehouse-under-test
  export_delay: 20ms
${upstreamsYaml(alpha, beta, legacy, api)}`,
      { COLLECTOR_KEY: 'ck-123' },
    );
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([alpha?.close(), beta?.close(), legacy?.close(), api?.close(), receiver?.close()]);
  });

  it("continues the client's trace (traceparent header): SERVER span, CLIENT child, upstream gets the CLIENT span's context", async () => {
    const ctx = clientContext();
    const client = await connect(gw.base, {
      traceparent: ctx.traceparent,
      tracestate: 'vendor=abc,other=1',
      'x-private-client-header': 'not-for-upstreams',
      cookie: 'session=secret',
    });
    try {
      const res = await client.callTool({ name: 'alpha__lookup', arguments: { key: 'k1' } });
      expect(textOf(res)).toBe('alpha:lookup:k1');
      const spans = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && s.name === 'tools/call lookup',
        2,
      );
      const server = spans.find((s) => s.kind === 'SERVER')!;
      const call = spans.find((s) => s.kind === 'CLIENT')!;
      expect(server).toBeDefined();
      expect(call).toBeDefined();
      // The gateway's span is the client span's child; the upstream call is the gateway span's child.
      expect(server.parentSpanId).toBe(ctx.spanId);
      expect(call.parentSpanId).toBe(server.spanId);
      expect(server.attributes).toMatchObject({
        'mcp.method.name': 'tools/call',
        'gatehouse.route': '/mcp',
        'mcp.session.id': client.transport?.sessionId,
        'gen_ai.tool.name': 'lookup',
        'gatehouse.upstream': 'alpha',
        'gatehouse.decision': 'allow',
        'gatehouse.outcome': 'ok',
        'http.response.status_code': 200,
      });
      expect(server.attributes['mcp.protocol.version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(server.attributes['jsonrpc.request.id']).toBeDefined();
      expect(server.attributes['user.id']).toBeUndefined();
      expect(server.status.code).toBe('UNSET');
      expect(call.attributes).toMatchObject({
        'mcp.method.name': 'tools/call',
        'gatehouse.upstream': 'alpha',
        'gen_ai.tool.name': 'lookup',
      });
      expect(server.resource['service.name']).toBe('gatehouse-under-test');
      expect(receiver.requests.every((h) => h['x-collector-key'] === 'ck-123')).toBe(true);

      // The upstream got the CLIENT span's context, in the header and in params._meta, with the tracestate.
      const seen = lastCall(alpha, 'lookup');
      const tp = parseTp(seen.header.traceparent);
      expect(tp).toEqual({ traceId: ctx.traceId, parentId: call.spanId, flags: '01' });
      expect(seen.meta?.traceparent).toBe(seen.header.traceparent);
      expect(seen.header.tracestate).toBe('vendor=abc,other=1');
      expect(seen.meta?.tracestate).toBe('vendor=abc,other=1');
      // Only the trace context crosses: no other header of the client's.
      expect(seen.headerNames).not.toContain('x-private-client-header');
      expect(seen.headerNames).not.toContain('cookie');

      // The exchange (audit, logs) names the same trace and the gateway's span.
      const event = gw.events.find((e) => e.traceId === ctx.traceId && e.mcpMethod === 'tools/call');
      expect(event?.spanId).toBe(server.spanId);
    } finally {
      await client.close();
    }
  });

  it('params._meta wins over the HTTP header, per message', async () => {
    const inHeader = clientContext();
    const inMeta = clientContext();
    const client = await connect(gw.base, { traceparent: inHeader.traceparent });
    try {
      await client.callTool({
        name: 'alpha__lookup',
        arguments: { key: 'k2' },
        _meta: { traceparent: inMeta.traceparent },
      });
      const [server] = await receiver.waitForSpans(
        (s) => ofTrace(inMeta.traceId)(s) && s.kind === 'SERVER' && s.name === 'tools/call lookup',
      );
      expect(server!.parentSpanId).toBe(inMeta.spanId);
      const seen = lastCall(alpha, 'lookup');
      expect(parseTp(seen.header.traceparent).traceId).toBe(inMeta.traceId);
      expect(parseTp(seen.meta?.traceparent).traceId).toBe(inMeta.traceId);
      // The header's tracestate belonged to the other context: it is not mixed in.
      expect(seen.header.tracestate).toBeUndefined();
      expect(seen.meta && 'tracestate' in seen.meta).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('starts a new trace when the client sends none; initialize and lists get spans too', async () => {
    const client = await connect(gw.base);
    try {
      await client.listTools();
      await client.callTool({ name: 'beta__lookup', arguments: { key: 'root' } });
      const seen = lastCall(beta, 'lookup');
      const tp = parseTp(seen.header.traceparent);
      const spans = await receiver.waitForSpans(ofTrace(tp.traceId), 2);
      const server = spans.find((s) => s.kind === 'SERVER')!;
      expect(server.parentSpanId).toBe('');
      expect(spans.find((s) => s.kind === 'CLIENT')!.spanId).toBe(tp.parentId);
      const sid = client.transport?.sessionId;
      const init = await receiver.waitForSpans(
        (s) => s.name === 'initialize' && s.attributes['mcp.session.id'] === sid,
      );
      expect(init[0]!.kind).toBe('SERVER');
      const list = await receiver.waitForSpans(
        (s) => s.name === 'tools/list' && s.attributes['mcp.session.id'] === sid,
      );
      expect(list[0]!.attributes['gatehouse.outcome']).toBe('ok');
    } finally {
      await client.close();
    }
  });

  it('marks failures: a tool error result, and a refused unknown tool (no upstream call)', async () => {
    const ctx = clientContext();
    const client = await connect(gw.base, { traceparent: ctx.traceparent });
    try {
      const res = await client.callTool({ name: 'alpha__broken', arguments: {} });
      expect(res.isError).toBe(true);
      const err = await rpcError(client.callTool({ name: 'no-such-tool', arguments: {} }));
      expect(err.code).toBe(-32602);
      const broken = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && s.name === 'tools/call broken',
        2,
      );
      for (const s of broken) {
        expect(s.status.code).toBe('ERROR');
        expect(s.attributes['error.type']).toBe('tool_error');
      }
      // A name that exists nowhere stays out of the span name (client-chosen: unbounded), not out of the span.
      const [unknown] = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && s.attributes['gen_ai.tool.name'] === 'no-such-tool',
      );
      expect(unknown!.name).toBe('tools/call');
      expect(unknown!.kind).toBe('SERVER');
      expect(unknown!.status.code).toBe('ERROR');
      expect(unknown!.attributes).toMatchObject({
        'rpc.response.status_code': '-32602',
        'error.type': '-32602',
        'gatehouse.outcome': 'error',
      });
      expect(receiver.spans.filter((s) => s.parentSpanId === unknown!.spanId)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('a tool chain that crosses several MCP servers through the gateway shares one trace', async () => {
    const ctx = clientContext();
    const client = await connect(gw.base, { traceparent: ctx.traceparent });
    try {
      const res = await client.callTool({
        name: 'alpha__chain',
        arguments: { url: `${gw.base}/mcp`, tool: 'beta__lookup' },
      });
      expect(textOf(res)).toBe('alpha:chain:beta:lookup:via-alpha');
      const spans = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && (s.name === 'tools/call chain' || s.name === 'tools/call lookup'),
        4,
      );
      const first = spans.find((s) => s.kind === 'SERVER' && s.name === 'tools/call chain')!;
      const firstCall = spans.find((s) => s.kind === 'CLIENT' && s.name === 'tools/call chain')!;
      const second = spans.find((s) => s.kind === 'SERVER' && s.name === 'tools/call lookup')!;
      const secondCall = spans.find((s) => s.kind === 'CLIENT' && s.name === 'tools/call lookup')!;
      expect(first.parentSpanId).toBe(ctx.spanId);
      expect(firstCall.parentSpanId).toBe(first.spanId);
      // alpha passed on (in params._meta) the context it got: the gateway's call to it.
      expect(second.parentSpanId).toBe(firstCall.spanId);
      expect(secondCall.parentSpanId).toBe(second.spanId);
      expect(parseTp(lastCall(beta, 'lookup').header.traceparent)).toEqual({
        traceId: ctx.traceId,
        parentId: secondCall.spanId,
        flags: '01',
      });
    } finally {
      await client.close();
    }
  });

  it('propagates to a legacy SSE upstream (header on the POST, and _meta), a REST API and a stdio process', async () => {
    const ctx = clientContext();
    const client = await connect(gw.base, { traceparent: ctx.traceparent });
    try {
      await client.callTool({ name: 'legacy__lookup', arguments: { key: 'old' } });
      const sse = lastCall(legacy, 'lookup');
      expect(sse.transport).toBe('sse');
      const [sseCall] = await receiver.waitForSpans(
        (s) =>
          ofTrace(ctx.traceId)(s) && s.kind === 'CLIENT' && s.attributes['gatehouse.upstream'] === 'legacy',
      );
      expect(parseTp(sse.header.traceparent)).toEqual({
        traceId: ctx.traceId,
        parentId: sseCall!.spanId,
        flags: '01',
      });
      expect(sse.meta?.traceparent).toBe(sse.header.traceparent);

      const res = await client.callTool({ name: 'api__get-order', arguments: { orderId: 'o-1' } });
      expect(res.isError ?? false).toBe(false);
      const [restCall] = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && s.kind === 'CLIENT' && s.attributes['gatehouse.upstream'] === 'api',
      );
      expect(restCall!.name).toBe('tools/call get-order');
      expect(restCall!.attributes['http.response.status_code']).toBe(200);
      const hit = api.seen.filter((r) => r.url.startsWith('/api/echo/orders/o-1')).at(-1)!;
      expect(parseTp(hit.headers.traceparent)).toEqual({
        traceId: ctx.traceId,
        parentId: restCall!.spanId,
        flags: '01',
      });

      await client.callTool({ name: 'local__echo', arguments: { text: 'hi' } });
      const [stdioCall] = await receiver.waitForSpans(
        (s) =>
          ofTrace(ctx.traceId)(s) && s.kind === 'CLIENT' && s.attributes['gatehouse.upstream'] === 'local',
      );
      const received = JSON.parse(
        textOf(await client.callTool({ name: 'local__received', arguments: {} })),
      ) as { method: string; params?: { name?: string; _meta?: { traceparent?: string } } }[];
      const echo = received.filter((r) => r.method === 'tools/call' && r.params?.name === 'echo').at(-1);
      expect(parseTp(echo?.params?._meta?.traceparent)).toEqual({
        traceId: ctx.traceId,
        parentId: stdioCall!.spanId,
        flags: '01',
      });
    } finally {
      await client.close();
    }
  });

  it('continues the trace of a client of the legacy HTTP+SSE transport (traceparent on its POSTs)', async () => {
    const ctx = clientContext();
    const client = new Client({ name: 'tracing-sse-client', version: '1.0.0' });
    await client.connect(
      new SSEClientTransport(new URL(`${gw.base}/mcp/sse`), {
        requestInit: { headers: { traceparent: ctx.traceparent } },
      }),
    );
    try {
      await client.callTool({ name: 'beta__lookup', arguments: { key: 'legacy-client' } });
      const spans = await receiver.waitForSpans(
        (s) => ofTrace(ctx.traceId)(s) && s.name === 'tools/call lookup',
        2,
      );
      const server = spans.find((s) => s.kind === 'SERVER')!;
      expect(server.parentSpanId).toBe(ctx.spanId);
      const call = spans.find((s) => s.kind === 'CLIENT')!;
      expect(parseTp(lastCall(beta, 'lookup').header.traceparent).parentId).toBe(call.spanId);
    } finally {
      await client.close();
    }
  });

  it("follows the client's sampling decision: an unsampled trace is not exported, yet propagated", async () => {
    const unsampled = clientContext(false);
    const sampled = clientContext(true);
    const client = await connect(gw.base);
    try {
      await client.callTool({
        name: 'alpha__lookup',
        arguments: { key: 'quiet' },
        _meta: { traceparent: unsampled.traceparent },
      });
      const seen = lastCall(alpha, 'lookup');
      const tp = parseTp(seen.header.traceparent);
      expect(tp.traceId).toBe(unsampled.traceId);
      expect(tp.flags).toBe('00');
      expect(tp.parentId).not.toBe(unsampled.spanId); // the gateway's (unrecorded) span is in between
      await client.callTool({
        name: 'alpha__lookup',
        arguments: { key: 'loud' },
        _meta: { traceparent: sampled.traceparent },
      });
      // Spans are exported in order: once the later trace is in, the earlier one would be too.
      await receiver.waitForSpans(ofTrace(sampled.traceId), 2);
      expect(receiver.spans.filter(ofTrace(unsampled.traceId))).toEqual([]);
    } finally {
      await client.close();
    }
  });
});

describe('tracing off: the client trace context is passed on unchanged', () => {
  let receiver: OtlpReceiver;
  let alpha: TracedUpstream;
  let beta: TracedUpstream;
  let legacy: TracedUpstream;
  let api: RestEcho;
  let gw: Running;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    [alpha, beta, legacy, api] = await Promise.all([
      startTracedUpstream('alpha'),
      startTracedUpstream('beta'),
      startTracedUpstream('gamma'),
      startRestEcho(),
    ]);
    // The endpoint is set but tracing is not enabled: nothing may reach it.
    gw = await start(
      `
tracing: { enabled: false, endpoint: "${receiver.url}", export_delay: 10ms }
${upstreamsYaml(alpha, beta, legacy, api)}`,
    );
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([alpha?.close(), beta?.close(), legacy?.close(), api?.close(), receiver?.close()]);
  });

  it('forwards the traceparent/tracestate header as it came, in headers and _meta; the trace id reaches the exchange record', async () => {
    const ctx = clientContext();
    const client = await connect(gw.base, { traceparent: ctx.traceparent, tracestate: 'vendor=abc' });
    try {
      await client.callTool({ name: 'alpha__lookup', arguments: { key: 'off' } });
      const seen = lastCall(alpha, 'lookup');
      expect(seen.header).toEqual({ traceparent: ctx.traceparent, tracestate: 'vendor=abc' });
      expect(seen.meta).toMatchObject({ traceparent: ctx.traceparent, tracestate: 'vendor=abc' });
      await client.callTool({ name: 'api__get-order', arguments: { orderId: 'o-2' } });
      const hit = api.seen.filter((r) => r.url.startsWith('/api/echo/orders/o-2')).at(-1)!;
      expect(hit.headers.traceparent).toBe(ctx.traceparent);
      const event = gw.events.find((e) => e.mcpMethod === 'tools/call' && e.traceId === ctx.traceId);
      expect(event?.spanId).toBe(ctx.spanId);
    } finally {
      await client.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.requests).toEqual([]);
  });

  it('takes a traceparent from params._meta alone and sends it as the upstream header too', async () => {
    const ctx = clientContext();
    const client = await connect(gw.base);
    try {
      await client.callTool({
        name: 'legacy__lookup',
        arguments: { key: 'meta-only' },
        _meta: { traceparent: ctx.traceparent },
      });
      const seen = lastCall(legacy, 'lookup');
      expect(seen.header.traceparent).toBe(ctx.traceparent);
      expect(seen.meta?.traceparent).toBe(ctx.traceparent);
      expect(gw.events.some((e) => e.mcpMethod === 'tools/call' && e.traceId === ctx.traceId)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('drops an invalid traceparent (never forwarded, no trace id)', async () => {
    const bad = `00-${'0'.repeat(32)}-${hex(8)}-01`; // an all-zero trace id is invalid
    const client = await connect(gw.base, { traceparent: bad, tracestate: 'vendor=abc' });
    try {
      await client.callTool({ name: 'beta__lookup', arguments: { key: 'bad' } });
      const seen = lastCall(beta, 'lookup');
      expect(seen.header).toEqual({});
      expect(seen.meta?.traceparent).toBeUndefined();
      const event = gw.events.filter((e) => e.mcpMethod === 'tools/call' && e.upstream === 'beta').at(-1);
      expect(event?.traceId).toBeUndefined();
    } finally {
      await client.close();
    }
  });
});

describe('tracing on, collector down', () => {
  it('calls still succeed and the gateway stops promptly', async () => {
    // A port nothing listens on.
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const up = await startTracedUpstream('solo');
    const logLines: string[] = [];
    const gw = await start(
      `
tracing: { enabled: true, endpoint: "http://127.0.0.1:${port}/v1/traces", export_delay: 10ms }
upstreams:
  solo: { type: streamable-http, url: "${up.url}" }
routes:
  - path: /mcp
    upstreams: [solo]
    tools: { prefix: never }
health: { interval: 0 }
audit: { enabled: false }
`,
      {},
      pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) }),
    );
    const ctx = clientContext();
    const client = await connect(gw.base, { traceparent: ctx.traceparent });
    try {
      for (let i = 0; i < 5; i++) {
        const res = await client.callTool({ name: 'lookup', arguments: { key: `k${i}` } });
        expect(textOf(res)).toBe(`solo:lookup:k${i}`);
        await new Promise((r) => setTimeout(r, 20)); // let failed exports happen in between
      }
      await waitFor(() => up.seen.length === 5, 'five calls upstream');
      // The failed export is reported in the gateway's log (once: it is throttled).
      await waitFor(
        () => logLines.some((l) => l.includes('tracing: OpenTelemetry reported a problem')),
        'the export failure in the log',
        10_000,
      );
      expect(parseTp(lastCall(up, 'lookup').header.traceparent).traceId).toBe(ctx.traceId);
    } finally {
      await client.close();
      const t = performance.now();
      await gw.close();
      expect(performance.now() - t).toBeLessThan(4_000);
      await up.close();
    }
  });
});
