// The metrics sink on its own: label bounds (length, distinct values, series), resource URI normalisation,
// refusal categories, and the exposition text it produces (parsed back).

import { describe, expect, it } from 'vitest';
import type { RouteView } from '../../src/catalog/view.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { ExchangeEvent } from '../../src/telemetry/events.ts';
import { denyReason, GatewayMetrics, OTHER, UNMATCHED } from '../../src/telemetry/metrics.ts';
import { resourceTemplateLabeller, templateRegExp } from '../../src/telemetry/resource-templates.ts';
import { parseExposition, sample, samples } from '../helpers/prometheus.ts';

function event(over: Partial<ExchangeEvent> = {}): ExchangeEvent {
  return {
    startedAt: 0,
    route: '/mcp',
    sessionId: 's',
    subject: undefined,
    mcpMethod: 'tools/call',
    upstream: 'up',
    target: 'echo',
    targetKind: 'tool',
    outcome: 'ok',
    httpStatus: 200,
    rpcCode: undefined,
    durationMs: 2,
    upstreamMs: 1.5,
    requestId: 'r',
    requestBytes: 100,
    response: { jsonrpc: '2.0', id: 1, result: { content: [] } },
    ...over,
  };
}

function metrics(over: Partial<ConstructorParameters<typeof GatewayMetrics>[0]> = {}): GatewayMetrics {
  return new GatewayMetrics({
    maxLabelValues: 20,
    maxLabelLength: 32,
    maxSeries: 200,
    resourceUriPrefix: 12,
    processMetrics: false,
    ...over,
  });
}

async function scrape(m: GatewayMetrics) {
  return parseExposition((await m.exposition()).body);
}

describe('request metrics', () => {
  it('counts requests, bytes and durations per label combination', async () => {
    const m = metrics();
    m.emit(event());
    m.emit(event({ durationMs: 300, upstreamMs: 299 }));
    m.emit(event({ target: 'other' }));
    m.emit(
      event({
        outcome: 'error',
        rpcCode: -32602,
        target: 'nope',
        targetKind: undefined,
        upstream: undefined,
        upstreamMs: undefined,
      }),
    );
    const s = await scrape(m);
    const echo = {
      route: '/mcp',
      mcp_server: 'up',
      mcp_method: 'tools/call',
      tool_name: 'echo',
      outcome: 'ok',
    };
    expect(sample(s, 'gatehouse_requests_total', echo)).toBe(2);
    expect(sample(s, 'gatehouse_requests_total', { tool_name: 'other' })).toBe(1);
    expect(sample(s, 'gatehouse_requests_total')).toBe(4);
    // The refused unknown name is no label value; its series has no server and no tool.
    const refused = samples(s, 'gatehouse_requests_total', { outcome: 'error' });
    expect(refused).toHaveLength(1);
    expect(refused[0]!.labels).toMatchObject({
      tool_name: '',
      mcp_server: '',
      rpc_code: '-32602',
      response_code: '200',
    });
    expect(sample(s, 'gatehouse_request_bytes_total', echo)).toBe(200);
    const resBytes = Buffer.byteLength(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [] } }));
    expect(sample(s, 'gatehouse_response_bytes_total', echo)).toBe(2 * resBytes);
    expect(sample(s, 'gatehouse_request_duration_seconds_count', echo)).toBe(2);
    expect(sample(s, 'gatehouse_request_duration_seconds_sum', echo)).toBeCloseTo(0.302, 6);
    expect(sample(s, 'gatehouse_request_duration_seconds_bucket', { ...echo, le: '0.0025' })).toBe(1);
    expect(sample(s, 'gatehouse_request_duration_seconds_bucket', { ...echo, le: '0.25' })).toBe(1);
    expect(sample(s, 'gatehouse_request_duration_seconds_bucket', { ...echo, le: '0.5' })).toBe(2);
    expect(sample(s, 'gatehouse_request_duration_seconds_bucket', { ...echo, le: '+Inf' })).toBe(2);
    // Only exchanges that reached an upstream are in the upstream histogram.
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_count')).toBe(3);
    expect(sample(s, 'gatehouse_upstream_request_duration_seconds_bucket', { ...echo, le: '0.25' })).toBe(1);
  });

  it('caps the length and the distinct values of labels fed by callers and upstreams', async () => {
    const m = metrics({ maxLabelValues: 10, maxLabelLength: 16 });
    for (let i = 0; i < 50; i++)
      m.emit(event({ mcpMethod: `x/custom-${i}`, target: undefined, targetKind: undefined }));
    for (let i = 0; i < 50; i++) m.emit(event({ outcome: 'error', rpcCode: -40000 - i }));
    m.emit(event({ target: 'a-very-long-tool-name-indeed' }));
    const s = await scrape(m);
    const methods = new Set(samples(s, 'gatehouse_requests_total').map((x) => x.labels.mcp_method));
    expect(methods.size).toBe(12); // 10 custom, __other__, and tools/call (known methods are never capped)
    expect(methods.has(OTHER)).toBe(true);
    expect(sample(s, 'gatehouse_requests_total', { mcp_method: OTHER })).toBe(40);
    const codes = new Set(
      samples(s, 'gatehouse_requests_total', { outcome: 'error' }).map((x) => x.labels.rpc_code),
    );
    expect(codes.size).toBe(11);
    expect(sample(s, 'gatehouse_requests_total', { rpc_code: OTHER })).toBe(40);
    expect(sample(s, 'gatehouse_requests_total', { tool_name: 'a-very-long-too…' })).toBe(1);
    expect(sample(s, 'gatehouse_metrics_label_overflow_total', { label: 'mcp_method' })).toBe(40);
    expect(sample(s, 'gatehouse_metrics_label_overflow_total', { label: 'rpc_code' })).toBe(40);
  });

  it("limits the label combinations: past max_series, the route's __other__ series counts", async () => {
    const m = metrics({ maxSeries: 100, maxLabelValues: 1000 });
    for (let i = 0; i < 300; i++) m.emit(event({ target: `tool-${i}` }));
    const s = await scrape(m);
    expect(samples(s, 'gatehouse_requests_total')).toHaveLength(101);
    expect(
      sample(s, 'gatehouse_requests_total', { route: '/mcp', tool_name: OTHER, mcp_server: OTHER }),
    ).toBe(200);
    expect(sample(s, 'gatehouse_requests_total')).toBe(300);
    expect(sample(s, 'gatehouse_metrics_label_overflow_total', { label: 'series' })).toBe(200);
    expect(m.sizes.series).toBe(101);
  });

  it('normalises resource URIs: listed or templated as is, else cut to the prefix, then capped', async () => {
    const m = metrics({ maxLabelValues: 10 });
    m.setSources({
      resourceLabel: (_route, upstream, uri) =>
        upstream === 'up' && uri.startsWith('mem://items/') ? 'mem://items/{id}' : undefined,
    });
    const read = (uri: string) =>
      m.emit(event({ mcpMethod: 'resources/read', target: uri, targetKind: 'resource' }));
    for (let i = 0; i < 1000; i++) read(`mem://items/${i}`);
    read('short://x');
    for (let i = 0; i < 1000; i++) read(`r://${i}-and-more-to-cut`);
    const s = await scrape(m);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'mem://items/{id}' })).toBe(1000);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'short://x' })).toBe(1);
    // 12 characters kept ('r://0-and-mo…'): 1000 distinct prefixes, 8 of which fit beside the first two.
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'r://0-and-mo…' })).toBe(1);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'r://7-and-mo…' })).toBe(1);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: 'r://8-and-mo…' })).toBe(0);
    const uris = new Set(samples(s, 'gatehouse_requests_total').map((x) => x.labels.resource_uri));
    expect(uris.size).toBe(11);
    expect(sample(s, 'gatehouse_requests_total', { resource_uri: OTHER })).toBe(992);

    const none = metrics({ resourceUriPrefix: 0 });
    none.emit(event({ mcpMethod: 'resources/read', target: 'file:///etc/passwd', targetKind: 'resource' }));
    expect(sample(await scrape(none), 'gatehouse_requests_total', { resource_uri: UNMATCHED })).toBe(1);
  });
});

describe('refusals', () => {
  it('are counted by reason category', async () => {
    expect(denyReason(event({ outcome: 'denied', reason: 'u:x is denied by acl.tools' }))).toBe('acl');
    expect(
      denyReason(event({ outcome: 'denied', httpStatus: 403, reason: 'acl.tools requires scope a, which…' })),
    ).toBe('scope');
    expect(denyReason(event({ outcome: 'denied', httpStatus: 429 }))).toBe('rate_limit');
    expect(denyReason(event({ outcome: 'denied' }))).toBe('policy');
    expect(denyReason(event({ outcome: 'error', httpStatus: 401, upstream: undefined }))).toBe('auth');
    expect(denyReason(event({ outcome: 'error', httpStatus: 403, upstream: undefined }))).toBe('auth');
    expect(denyReason(event({ outcome: 'error', httpStatus: 400, upstream: undefined }))).toBeUndefined();
    expect(denyReason(event({ outcome: 'ok' }))).toBeUndefined();
    const m = metrics();
    m.emit(event({ outcome: 'denied', reason: 'denied by acl' }));
    m.emit(event({ outcome: 'denied', reason: 'denied by acl' }));
    m.emit(
      event({
        outcome: 'error',
        httpStatus: 401,
        upstream: undefined,
        mcpMethod: '',
        target: undefined,
        targetKind: undefined,
      }),
    );
    const s = await scrape(m);
    expect(sample(s, 'gatehouse_denied_total', { route: '/mcp', mcp_server: 'up', reason: 'acl' })).toBe(2);
    expect(sample(s, 'gatehouse_denied_total', { route: '/mcp', mcp_server: '', reason: 'auth' })).toBe(1);
    expect(samples(s, 'gatehouse_denied_total')).toHaveLength(2);
  });
});

describe('gauges', () => {
  it('read their sources at scrape time', async () => {
    const m = metrics();
    let inFlight = 3;
    m.setSources({
      routes: ['/mcp', '/other'],
      upstreams: () => [
        ['a', { status: 'up', inFlight }],
        ['b', { status: 'down', inFlight: 0 }],
        ['c', { status: 'unknown', inFlight: 0 }],
      ],
      sessionsByRoute: () => new Map([['/mcp', 4]]),
      stdioProcesses: () => [['files', 2]],
    });
    let s = await scrape(m);
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'a' })).toBe(1);
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'b' })).toBe(0);
    expect(sample(s, 'gatehouse_upstream_up', { upstream: 'c' })).toBe(0);
    expect(sample(s, 'gatehouse_upstream_in_flight', { upstream: 'a' })).toBe(3);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/mcp' })).toBe(4);
    expect(sample(s, 'gatehouse_sessions_open', { route: '/other' })).toBe(0);
    expect(sample(s, 'gatehouse_stdio_processes', { upstream: 'files' })).toBe(2);
    // No audit writer: no audit series.
    expect(samples(s, 'gatehouse_audit_queue_depth')).toHaveLength(0);
    inFlight = 0;
    let accepting = true;
    m.setAuditStats(() => ({
      accepting,
      lost: 3,
      sinks: [
        {
          name: 'sqlite',
          queueDepth: 7,
          queueCapacity: 100,
          spooled: 2,
          spoolBytes: 512,
          written: 99,
          dropped: 1,
          failures: 4,
        },
        { name: 'pg', queueDepth: 0, spooled: 0, written: 5, dropped: 0 },
      ],
    }));
    s = await scrape(m);
    expect(sample(s, 'gatehouse_upstream_in_flight', { upstream: 'a' })).toBe(0);
    expect(sample(s, 'gatehouse_audit_queue_depth', { sink: 'sqlite' })).toBe(7);
    expect(sample(s, 'gatehouse_audit_queue_capacity', { sink: 'sqlite' })).toBe(100);
    expect(sample(s, 'gatehouse_audit_backlog', { sink: 'sqlite' })).toBe(2);
    expect(sample(s, 'gatehouse_audit_spool_bytes', { sink: 'sqlite' })).toBe(512);
    expect(sample(s, 'gatehouse_audit_dropped_total', { sink: 'sqlite' })).toBe(1);
    expect(sample(s, 'gatehouse_audit_failures_total', { sink: 'sqlite' })).toBe(4);
    expect(sample(s, 'gatehouse_audit_written_total', { sink: 'sqlite' })).toBe(99);
    expect(sample(s, 'gatehouse_audit_written_total', { sink: 'pg' })).toBe(5);
    // Figures a sink does not report are not exported for it.
    expect(samples(s, 'gatehouse_audit_queue_capacity')).toHaveLength(1);
    expect(samples(s, 'gatehouse_audit_failures_total')).toHaveLength(1);
    expect(sample(s, 'gatehouse_audit_lost_total')).toBe(3);
    expect(sample(s, 'gatehouse_audit_accepting')).toBe(1);
    accepting = false;
    expect(sample(await scrape(m), 'gatehouse_audit_accepting')).toBe(0);
    expect(s.types.get('gatehouse_audit_dropped_total')).toBe('counter');
    expect(s.types.get('gatehouse_request_duration_seconds')).toBe('histogram');
  });
});

describe('resource templates', () => {
  it('compile like the SDK matches them', () => {
    const t = (tpl: string, uri: string) => templateRegExp(tpl)!.test(uri);
    expect(t('mem://items/{id}', 'mem://items/42')).toBe(true);
    expect(t('mem://items/{id}', 'mem://items/42/x')).toBe(false);
    expect(t('file:///{+path}', 'file:///a/b/c.txt')).toBe(true);
    expect(t('db://{table}{?limit,offset}', 'db://users?limit=1&offset=2')).toBe(true);
    expect(t('db://{table}{?limit,offset}', 'db://users')).toBe(false);
    expect(t('x://a.b{/seg*}', 'x://a.b/one')).toBe(true);
    expect(t('x://(literal)[chars]', 'x://(literal)[chars]')).toBe(true);
    expect(templateRegExp('x://{unclosed')).toBeUndefined();
  });

  it('label URIs by the route view: listed, templated (per upstream), else nothing', () => {
    const view = {
      resources: {
        items: [],
        byUri: new Map([['gatehouse://a/mem://one', { upstream: 'a', original: 'mem://one' }]]),
      },
      templates: {
        items: [],
        byTemplate: new Map(),
        matchers: [
          { upstream: 'a', exposed: 'mem://items/{id}', original: 'mem://items/{id}', template: undefined },
        ],
      },
    } as unknown as RouteView;
    let calls = 0;
    const label = resourceTemplateLabeller((route) => {
      calls++;
      return route === '/mcp' ? view : undefined;
    });
    expect(label('/mcp', 'a', 'mem://one')).toBe('mem://one');
    expect(label('/mcp', 'a', 'mem://items/7')).toBe('mem://items/{id}');
    expect(label('/mcp', 'a', 'mem://items/7')).toBe('mem://items/{id}');
    expect(label('/mcp', 'b', 'mem://items/7')).toBeUndefined();
    expect(label('/mcp', 'a', 'mem://other/7')).toBeUndefined();
    expect(label('/mcp', undefined, 'mem://one')).toBeUndefined();
    expect(label('/none', 'a', 'mem://one')).toBeUndefined();
    expect(calls).toBe(6);
  });
});

describe('metrics config', () => {
  const base = (extra: string) => `
upstreams:
  up: { type: streamable-http, url: "http://127.0.0.1:1/mcp" }
routes:
  - path: /mcp
    upstreams: [up]
${extra}`;
  const problems = (extra: string): { path: string; message: string }[] => {
    try {
      parseConfig(base(extra), 'test.yaml', {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.map((p) => ({ path: p.path, message: p.message }));
    }
    return [];
  };

  it('accepts a path of its own, and the admin listener when there is one', () => {
    expect(problems('metrics: { path: /prom }')).toEqual([]);
    expect(problems('admin: { listen: { port: 0 } }\nmetrics: { listener: admin }')).toEqual([]);
    expect(problems('metrics: { enabled: false, listener: admin }')).toEqual([]);
  });

  it('refuses the admin listener without admin.listen, a route path, and reserved paths', () => {
    expect(problems('metrics: { listener: admin }')).toEqual([
      { path: 'metrics.listener', message: expect.stringContaining('admin.listen') },
    ]);
    expect(problems('admin: {}\nmetrics: { listener: admin }').map((p) => p.path)).toEqual([
      'metrics.listener',
    ]);
    expect(problems('metrics: { path: /mcp }')).toEqual([
      { path: 'metrics.path', message: expect.stringContaining('MCP endpoint') },
    ]);
    expect(problems('metrics: { path: /mcp/sse }').map((p) => p.path)).toEqual(['metrics.path']);
    expect(problems('metrics: { path: /healthz }').map((p) => p.path)).toEqual(['metrics.path']);
    expect(problems('metrics: { path: /admin/metrics }').map((p) => p.path)).toEqual(['metrics.path']);
    expect(problems('metrics: { path: "no-slash" }').map((p) => p.path)).toEqual(['metrics.path']);
    expect(problems('metrics: { max_label_values: 1 }').map((p) => p.path)).toEqual([
      'metrics.max_label_values',
    ]);
  });
});
