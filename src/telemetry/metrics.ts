// Prometheus metrics: an exchange sink counting every MCP exchange (calls, durations, bytes, denials), and
// gauges read at scrape time (upstream health and in-flight requests, open sessions, stdio processes, the
// audit queue). Served in the text exposition format by prom-client's registry.
//
// The hot path is one event → a few Set lookups (to bound label values) and a walk of nested Maps to the
// event's series, whose plain numbers are incremented: no label hashing, no string building per call.
// Values are turned into prom-client's metric objects only when scraped.
//
// Cardinality is bounded: label values that callers or upstreams choose (tool, resource, prompt, method,
// JSON-RPC and upstream codes) are cut to a length and limited to N distinct values per label (then
// "__other__"); resource URIs are normalised to the listed URI or the matching resource template, else cut
// to a prefix; the label combinations of the per-request metrics are limited too.

import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import { type ExchangeEvent, type ExchangeSink, type Outcome, responseBytes } from './events.ts';

/**
 * The process's own metrics (CPU, memory, event-loop lag, GC), registered once per process: prom-client
 * starts an event-loop monitor for them that nothing stops, so every gateway in the process shares it.
 */
let processMetrics: Registry | undefined;
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

export const OTHER = '__other__';
export const UNMATCHED = '__unmatched__';

/** Bucket bounds (seconds) of the duration histograms: sub-millisecond gateway work up to a minute. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export interface MetricsOptions {
  /** Distinct values kept per bounded label (then "__other__"). */
  maxLabelValues: number;
  /** Longest label value kept (longer ones are cut, ending with "…"). */
  maxLabelLength: number;
  /** Label combinations of the per-request metrics (then the route's "__other__" series). */
  maxSeries: number;
  /** Characters kept of a resource URI that is neither listed nor templated (0: "__unmatched__"). */
  resourceUriPrefix: number;
  /** Process metrics (CPU, memory, event loop, GC) of prom-client; default true. */
  processMetrics?: boolean;
}

/** One audit sink's figures, as the audit log reports them (its stats(); a structural match). */
export interface AuditSinkStats {
  name: string;
  /** Records waiting in memory (queue and the batch being written). */
  queueDepth: number;
  queueCapacity?: number;
  /** Records waiting in the local spool (written while the sink was down or the queue full). */
  spooled: number;
  spoolBytes?: number;
  /** Totals since start. */
  written: number;
  dropped: number;
  failures?: number;
}

/** The audit log's figures. */
export interface AuditStats {
  /** Whether every sink can keep a record now. */
  accepting?: boolean;
  /** Records lost by any sink since start. */
  lost?: number;
  sinks: readonly AuditSinkStats[];
}

/** What the gauges read at scrape time; each is optional. */
export interface MetricsSources {
  /** Every upstream's health: name → status and requests in flight. */
  upstreams?(): Iterable<readonly [string, { status: string; inFlight: number }]>;
  /** Open client sessions per route path. */
  sessionsByRoute?(): ReadonlyMap<string, number>;
  /** Live processes of each stdio upstream. */
  stdioProcesses?(): Iterable<readonly [string, number]>;
  /** The audit writer's figures. */
  audit?(): AuditStats | undefined;
  /** A resource URI's label: the listed URI or its template (see resource-templates.ts), else undefined. */
  resourceLabel?(route: string, upstream: string | undefined, uri: string): string | undefined;
  /** Route paths (so that a route without sessions shows 0). */
  routes?: readonly string[];
}

/** MCP methods of the specification: never counted against the method label's cap. */
const KNOWN_METHODS = new Set([
  '',
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/result',
  'tasks/list',
  'tasks/cancel',
]);

/** Label names of the request counters, in the order of the series tree. */
export const REQUEST_LABELS = [
  'route',
  'mcp_server',
  'mcp_method',
  'tool_name',
  'resource_uri',
  'prompt_name',
  'outcome',
  'response_code',
  'rpc_code',
  'upstream_response_code',
] as const;

/** Label names of the duration histograms (no JSON-RPC or upstream codes: fewer series × buckets). */
export const DURATION_LABELS = [
  'route',
  'mcp_server',
  'mcp_method',
  'tool_name',
  'resource_uri',
  'prompt_name',
  'outcome',
  'response_code',
] as const;

export type DenyReason = 'acl' | 'scope' | 'auth' | 'rate_limit' | 'policy';

type Labels = Record<string, string>;

/** Limits the distinct values of one label: values seen are kept, new ones while there is room. */
class LabelLimiter {
  readonly #seen = new Set<string | number>();
  readonly #max: number;
  readonly #maxLength: number;
  overflow = 0;
  constructor(max: number, maxLength: number) {
    this.#max = max;
    this.#maxLength = maxLength;
  }
  admit(v: string): string;
  admit(v: number): number | string;
  admit(v: string | number): string | number {
    if (this.#seen.has(v)) return v;
    if (typeof v === 'string' && v.length > this.#maxLength) {
      v = `${v.slice(0, this.#maxLength - 1)}…`;
      if (this.#seen.has(v)) return v;
    }
    if (this.#seen.size < this.#max) {
      this.#seen.add(v);
      return v;
    }
    this.overflow++;
    return OTHER;
  }
  get size(): number {
    return this.#seen.size;
  }
}

class Hist {
  readonly labels: Labels;
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(labels: Labels) {
    this.labels = labels;
    this.counts = new Float64Array(DURATION_BUCKETS.length);
  }
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    const b = DURATION_BUCKETS;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** One label combination of the per-request metrics: plain numbers, bound histograms. */
class Series {
  readonly labels: Labels;
  requests = 0;
  requestBytes = 0;
  responseBytes = 0;
  readonly duration: Hist;
  readonly upstream: Hist;
  constructor(labels: Labels, duration: Hist, upstream: Hist) {
    this.labels = labels;
    this.duration = duration;
    this.upstream = upstream;
  }
}

// The series tree: route → server → method → target kind → target → outcome → HTTP → rpc → upstream code.
type Level<T> = Map<string | number | undefined, T>;
type Tree = Level<Level<Level<Level<Level<Level<Level<Level<Level<Series>>>>>>>>>;

/** A prom-client metric whose values are produced at scrape time (registered as is). */
interface ScrapedMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: 'sum';
    values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
  }>;
  reset(): void;
}

function scraped(
  name: string,
  help: string,
  type: ScrapedMetric['type'],
  values: () => { labels: Record<string, string | number>; value: number; metricName?: string }[],
): ScrapedMetric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      return { name, help, type, aggregator: 'sum', values: values() };
    },
    reset() {},
  };
}

export class GatewayMetrics implements ExchangeSink {
  readonly registry = new Registry();
  readonly #opts: MetricsOptions;
  #sources: MetricsSources = {};
  readonly #tree: Tree = new Map();
  readonly #series: Series[] = [];
  /** Per route, the series of combinations past max_series. */
  readonly #overflow = new Map<string, Series>();
  readonly #hists = new Map<string, Hist>();
  readonly #upstreamHists: Hist[] = [];
  readonly #durationHists: Hist[] = [];
  readonly #denied = new Map<string, { labels: Labels; value: number }>();
  readonly #limits: Record<string, LabelLimiter>;
  #seriesOverflow = 0;

  constructor(opts: MetricsOptions) {
    this.#opts = opts;
    const limiter = () => new LabelLimiter(opts.maxLabelValues, opts.maxLabelLength);
    this.#limits = {
      mcp_method: limiter(),
      tool_name: limiter(),
      resource_uri: limiter(),
      prompt_name: limiter(),
      rpc_code: limiter(),
      upstream_response_code: limiter(),
    };
    this.#register();
    this.#processMetrics = opts.processMetrics !== false;
  }

  readonly #processMetrics: boolean;

  /** Where the gauges read (set once the gateway's parts exist; a later call replaces what it names). */
  setSources(sources: MetricsSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** The audit writer's figures (gatehouse_audit_*), read at scrape time. */
  setAuditStats(provider: () => AuditStats | undefined): void {
    this.#sources = { ...this.#sources, audit: provider };
  }

  emit(e: ExchangeEvent): void {
    const L = this.#limits;
    const method = KNOWN_METHODS.has(e.mcpMethod) ? e.mcpMethod : L.mcp_method!.admit(e.mcpMethod);
    // Only targets the catalogue resolved carry a kind: unknown names asked by clients get no label.
    const kind = e.targetKind;
    let target = '';
    if (kind !== undefined && e.target !== undefined) {
      if (kind === 'tool') target = L.tool_name!.admit(e.target);
      else if (kind === 'prompt') target = L.prompt_name!.admit(e.target);
      else target = L.resource_uri!.admit(this.#resource(e.route, e.upstream, e.target));
    }
    const rpc = e.rpcCode === undefined ? undefined : L.rpc_code!.admit(e.rpcCode);
    const up = e.upstreamCode === undefined ? undefined : L.upstream_response_code!.admit(e.upstreamCode);
    const server = e.upstream ?? '';

    const s =
      this.#tree
        .get(e.route)
        ?.get(server)
        ?.get(method)
        ?.get(kind)
        ?.get(target)
        ?.get(e.outcome)
        ?.get(e.httpStatus)
        ?.get(rpc)
        ?.get(up) ?? this.#create(e.route, server, method, kind, target, e.outcome, e.httpStatus, rpc, up);

    s.requests++;
    if (e.requestBytes !== undefined && e.requestBytes > 0) s.requestBytes += e.requestBytes;
    if (e.response) s.responseBytes += responseBytes(e) ?? 0;
    s.duration.observe(e.durationMs / 1000);
    if (e.upstreamMs !== undefined) s.upstream.observe(e.upstreamMs / 1000);

    const deny = denyReason(e);
    if (deny !== undefined) this.#deny(e.route, server, deny);
  }

  /** The label of a resource URI: listed or templated as is, else cut to the configured prefix. */
  #resource(route: string, upstream: string | undefined, uri: string): string {
    const known = this.#sources.resourceLabel?.(route, upstream, uri);
    if (known !== undefined) return known;
    const n = this.#opts.resourceUriPrefix;
    if (n === 0) return UNMATCHED;
    return uri.length > n ? `${uri.slice(0, n)}…` : uri;
  }

  #create(
    route: string,
    server: string,
    method: string,
    kind: string | undefined,
    target: string,
    outcome: Outcome,
    http: number,
    rpc: number | string | undefined,
    up: number | string | undefined,
  ): Series {
    if (this.#series.length >= this.#opts.maxSeries) {
      this.#seriesOverflow++;
      let s = this.#overflow.get(route);
      if (!s) {
        const labels: Labels = { route };
        for (const n of REQUEST_LABELS) if (n !== 'route') labels[n] = OTHER;
        s = this.#newSeries(labels);
        this.#overflow.set(route, s);
      }
      return s;
    }
    const labels: Labels = {
      route,
      mcp_server: server,
      mcp_method: method,
      tool_name: kind === 'tool' ? target : '',
      resource_uri: kind === 'resource' ? target : '',
      prompt_name: kind === 'prompt' ? target : '',
      outcome,
      response_code: String(http),
      rpc_code: rpc === undefined ? '' : String(rpc),
      upstream_response_code: up === undefined ? '' : String(up),
    };
    const s = this.#newSeries(labels);
    this.#series.push(s);
    const keys: (string | number | undefined)[] = [route, server, method, kind, target, outcome, http, rpc];
    // biome-ignore lint/suspicious/noExplicitAny: a tree of maps of varying depth
    let node: Map<unknown, any> = this.#tree;
    for (const k of keys) {
      let next = node.get(k);
      if (!next) {
        next = new Map();
        node.set(k, next);
      }
      node = next;
    }
    node.set(up, s);
    return s;
  }

  #newSeries(labels: Labels): Series {
    const reduced: Labels = {};
    for (const n of DURATION_LABELS) reduced[n] = labels[n]!;
    const key = JSON.stringify(reduced);
    let duration = this.#hists.get(`d${key}`);
    let upstream = this.#hists.get(`u${key}`);
    if (!duration || !upstream) {
      duration = new Hist(reduced);
      upstream = new Hist(reduced);
      this.#hists.set(`d${key}`, duration);
      this.#hists.set(`u${key}`, upstream);
      this.#durationHists.push(duration);
      this.#upstreamHists.push(upstream);
    }
    return new Series(labels, duration, upstream);
  }

  #deny(route: string, server: string, reason: DenyReason): void {
    const key = `${route}\u0000${server}\u0000${reason}`;
    let d = this.#denied.get(key);
    if (!d) {
      d = { labels: { route, mcp_server: server, reason }, value: 0 };
      this.#denied.set(key, d);
    }
    d.value++;
  }

  /** Every series, the overflow ones included (for scrapes). */
  #allSeries(): Series[] {
    return this.#overflow.size === 0 ? this.#series : [...this.#series, ...this.#overflow.values()];
  }

  #register(): void {
    const r = this.registry;
    const add = (m: ScrapedMetric) => r.registerMetric(m as unknown as Metric);
    const counter = (name: string, help: string, field: 'requests' | 'requestBytes' | 'responseBytes') =>
      add(
        scraped(name, help, 'counter', () =>
          this.#allSeries()
            .filter((s) => field === 'requests' || s[field] > 0)
            .map((s) => ({ labels: s.labels, value: s[field] })),
        ),
      );
    counter(
      'gatehouse_requests_total',
      'MCP requests handled, by route, upstream, method, target and outcome.',
      'requests',
    );
    counter(
      'gatehouse_request_bytes_total',
      'Bytes of the HTTP request bodies that carried MCP requests (a batch counts once per member).',
      'requestBytes',
    );
    counter(
      'gatehouse_response_bytes_total',
      'Bytes of the JSON-RPC answers to MCP requests.',
      'responseBytes',
    );
    const histogram = (name: string, help: string, hists: () => Hist[]) =>
      add(
        scraped(name, help, 'histogram', () => {
          const out: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
          for (const h of hists()) {
            if (h.count === 0) continue;
            let acc = 0;
            for (let i = 0; i < DURATION_BUCKETS.length; i++) {
              acc += h.counts[i]!;
              out.push({
                labels: { ...h.labels, le: DURATION_BUCKETS[i]! },
                value: acc,
                metricName: `${name}_bucket`,
              });
            }
            out.push({ labels: { ...h.labels, le: '+Inf' }, value: h.count, metricName: `${name}_bucket` });
            out.push({ labels: h.labels, value: h.sum, metricName: `${name}_sum` });
            out.push({ labels: h.labels, value: h.count, metricName: `${name}_count` });
          }
          return out;
        }),
      );
    histogram(
      'gatehouse_request_duration_seconds',
      'Time the gateway took to answer an MCP request (upstream time included).',
      () => this.#durationHists,
    );
    histogram(
      'gatehouse_upstream_request_duration_seconds',
      'Time spent waiting for the upstream, for MCP requests sent to one.',
      () => this.#upstreamHists,
    );
    add(
      scraped(
        'gatehouse_denied_total',
        'Requests refused by a decision, by reason category (acl, scope, auth, rate_limit, policy).',
        'counter',
        () => [...this.#denied.values()].map((d) => ({ labels: d.labels, value: d.value })),
      ),
    );
    add(
      scraped(
        'gatehouse_metrics_label_overflow_total',
        'Label values counted as "__other__" because a label (or the series count: label="series") reached its cap.',
        'counter',
        () => [
          ...Object.entries(this.#limits).map(([label, l]) => ({ labels: { label }, value: l.overflow })),
          { labels: { label: 'series' }, value: this.#seriesOverflow },
        ],
      ),
    );

    const self = this;
    new Gauge({
      name: 'gatehouse_upstream_up',
      help: 'Whether the upstream is up (1) or down / not yet probed (0), as probes and calls see it.',
      labelNames: ['upstream'],
      registers: [r],
      collect() {
        this.reset();
        for (const [name, h] of self.#sources.upstreams?.() ?? [])
          this.set({ upstream: name }, h.status === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'gatehouse_upstream_in_flight',
      help: 'Requests in flight to the upstream.',
      labelNames: ['upstream'],
      registers: [r],
      collect() {
        this.reset();
        for (const [name, h] of self.#sources.upstreams?.() ?? []) this.set({ upstream: name }, h.inFlight);
      },
    });
    new Gauge({
      name: 'gatehouse_sessions_open',
      help: 'Open client sessions per route.',
      labelNames: ['route'],
      registers: [r],
      collect() {
        this.reset();
        const counts = self.#sources.sessionsByRoute?.();
        for (const route of self.#sources.routes ?? []) this.set({ route }, counts?.get(route) ?? 0);
        for (const [route, n] of counts ?? []) this.set({ route }, n);
      },
    });
    new Gauge({
      name: 'gatehouse_stdio_processes',
      help: 'Live processes of each stdio upstream.',
      labelNames: ['upstream'],
      registers: [r],
      collect() {
        this.reset();
        for (const [name, n] of self.#sources.stdioProcesses?.() ?? []) this.set({ upstream: name }, n);
      },
    });
    // Audit: the audit log's stats() (cheap) read by each family at scrape time.
    const auditStats = (): AuditStats | undefined => self.#sources.audit?.();
    const perSink = (
      name: string,
      help: string,
      type: 'gauge' | 'counter',
      field: 'queueDepth' | 'queueCapacity' | 'spooled' | 'spoolBytes' | 'written' | 'dropped' | 'failures',
    ) =>
      add(
        scraped(name, help, type, () =>
          (auditStats()?.sinks ?? []).flatMap((k) => {
            const v = k[field];
            return typeof v === 'number' ? [{ labels: { sink: k.name }, value: v }] : [];
          }),
        ),
      );
    perSink(
      'gatehouse_audit_queue_depth',
      'Audit records waiting in memory to be written.',
      'gauge',
      'queueDepth',
    );
    perSink('gatehouse_audit_queue_capacity', 'Capacity of the audit queue.', 'gauge', 'queueCapacity');
    perSink(
      'gatehouse_audit_backlog',
      'Audit records spooled to local disk, waiting for their sink.',
      'gauge',
      'spooled',
    );
    perSink('gatehouse_audit_spool_bytes', 'Size of the audit spool on disk.', 'gauge', 'spoolBytes');
    perSink('gatehouse_audit_written_total', 'Audit records written since start.', 'counter', 'written');
    perSink(
      'gatehouse_audit_dropped_total',
      'Audit records a sink could neither write nor spool, since start.',
      'counter',
      'dropped',
    );
    perSink(
      'gatehouse_audit_failures_total',
      'Failed audit write attempts, since start.',
      'counter',
      'failures',
    );
    add(
      scraped('gatehouse_audit_lost_total', 'Audit records lost by any sink since start.', 'counter', () => {
        const v = auditStats()?.lost;
        return typeof v === 'number' ? [{ labels: {}, value: v }] : [];
      }),
    );
    add(
      scraped(
        'gatehouse_audit_accepting',
        'Whether every audit sink can keep a record now (1); else 0 (routes with audit: required answer 503).',
        'gauge',
        () => {
          const v = auditStats()?.accepting;
          return typeof v === 'boolean' ? [{ labels: {}, value: v ? 1 : 0 }] : [];
        },
      ),
    );
  }

  /** The text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    const body = await this.registry.metrics();
    if (!this.#processMetrics) return { contentType: this.registry.contentType, body };
    return { contentType: this.registry.contentType, body: `${body}\n${await processRegistry().metrics()}` };
  }

  /** Figures about the bounds (tests, admin). */
  get sizes(): { series: number; labelValues: Record<string, number> } {
    return {
      series: this.#series.length + this.#overflow.size,
      labelValues: Object.fromEntries(Object.entries(this.#limits).map(([k, l]) => [k, l.size])),
    };
  }
}

/** Why an exchange was refused, as a bounded category; undefined when it was not a refusal. */
export function denyReason(e: ExchangeEvent): DenyReason | undefined {
  if (e.outcome === 'denied') {
    if (e.httpStatus === 429) return 'rate_limit';
    if (e.reason !== undefined) return e.reason.includes('requires scope') ? 'scope' : 'acl';
    return 'policy';
  }
  if (e.outcome === 'error' && e.upstream === undefined) {
    if (e.httpStatus === 401 || e.httpStatus === 403) return 'auth';
    if (e.httpStatus === 429) return 'rate_limit';
  }
  return undefined;
}

/** Serves the exposition at `path` (GET) on a listener: the main one or the admin API's. */
export function serveMetrics(app: FastifyInstance, path: string, metrics: GatewayMetrics): void {
  app.get(path, async (_req, reply) => {
    const { contentType, body } = await metrics.exposition();
    return reply.header('cache-control', 'no-store').type(contentType).send(body);
  });
}
