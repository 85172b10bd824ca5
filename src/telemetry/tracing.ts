// W3C trace context through the gateway, and OpenTelemetry spans (off by default).
//
// Always, for the price of a header read: a client's valid `traceparent` (and `tracestate`) — from the HTTP
// request, or from the message's `params._meta`, which wins (it is per message, and survives transports
// without headers) — names the exchange's trace (audit, logs) and is passed on unchanged to the upstream,
// as HTTP headers and in the forwarded request's `params._meta`.
//
// With `tracing.enabled`: a SERVER span per MCP request, a CLIENT span per upstream call (its context is
// what the upstream then receives), exported over OTLP/HTTP (JSON) in batches, off the request path. A
// failing exporter never fails a call: spans are dropped when its queue is full, and the failure logged.

import {
  type Attributes,
  type Context,
  createTraceState,
  DiagLogLevel,
  diag,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TraceState,
  trace,
} from '@opentelemetry/api';
import type { GatehouseError } from '../mcp/errors.ts';
import { type JsonRpcRequest, type JsonRpcResponse, UPSTREAM_CODE } from '../mcp/jsonrpc.ts';
import type { ExchangeEvent } from './events.ts';
import type { Logger } from './logger.ts';

/** A client's trace context, validated (never forwarded otherwise). */
export interface TraceContext {
  /** Version-00 form of the client's traceparent. */
  traceparent: string;
  tracestate: string | undefined;
  traceId: string;
  /** The client's span (the parent of the gateway's). */
  spanId: string;
  flags: number;
}

/** What a request's metadata carries about its trace (RequestMeta has these fields). */
export interface TraceFields {
  traceId?: string | undefined;
  spanId?: string | undefined;
  /** The client's context (header, or `params._meta`). */
  traceContext?: TraceContext | undefined;
  /** This request's span, when tracing is on. */
  span?: RequestSpan | undefined;
}

// Attribute names: OpenTelemetry's MCP semantic conventions (development status) where they have one,
// `gatehouse.*` for what only a gateway knows.
export const ATTR = {
  method: 'mcp.method.name',
  sessionId: 'mcp.session.id',
  protocolVersion: 'mcp.protocol.version',
  requestId: 'jsonrpc.request.id',
  tool: 'gen_ai.tool.name',
  prompt: 'gen_ai.prompt.name',
  resource: 'mcp.resource.uri',
  rpcCode: 'rpc.response.status_code',
  errorType: 'error.type',
  httpStatus: 'http.response.status_code',
  userId: 'user.id',
  route: 'gatehouse.route',
  upstream: 'gatehouse.upstream',
  decision: 'gatehouse.decision',
  reason: 'gatehouse.reason',
  outcome: 'gatehouse.outcome',
  agent: 'gatehouse.agent',
  tenant: 'gatehouse.tenant',
} as const;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';
/** A tracestate list member (W3C Trace Context, level 1). */
const MEMBER =
  /^(?:[a-z][_0-9a-z*/-]{0,255}|[a-z0-9][_0-9a-z*/-]{0,240}@[a-z][_0-9a-z*/-]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** A valid traceparent (any version, read as version 00), else undefined. */
export function parseTraceparent(
  value: unknown,
): { traceId: string; spanId: string; flags: number } | undefined {
  if (typeof value !== 'string' || value.length < 55 || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const version = m[1]!;
  if (version === 'ff' || (version === '00' && value.length !== 55)) return undefined;
  const traceId = m[2]!;
  const spanId = m[3]!;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: Number.parseInt(m[4]!, 16) };
}

/** A valid tracestate, normalised (members trimmed, empty ones dropped), else undefined. */
export function parseTracestate(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const members = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (members.length === 0 || members.length > 32 || !members.every((s) => MEMBER.test(s))) return undefined;
  return members.join(',');
}

/** A trace context from a traceparent and tracestate pair; tracestate is dropped when invalid. */
export function traceContext(traceparent: unknown, tracestate: unknown): TraceContext | undefined {
  const p = parseTraceparent(traceparent);
  if (!p) return undefined;
  return {
    traceparent: formatTraceparent(p.traceId, p.spanId, p.flags),
    tracestate: tracestate === undefined ? undefined : parseTracestate(tracestate),
    ...p,
  };
}

export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${flags & 1 ? '01' : '00'}`;
}

/** The trace context a message carries in `params._meta`, when valid. */
function metaContext(req: JsonRpcRequest): TraceContext | undefined {
  const meta = req.params?._meta;
  if (typeof meta !== 'object' || meta === null) return undefined;
  const m = meta as Record<string, unknown>;
  return m.traceparent === undefined ? undefined : traceContext(m.traceparent, m.tracestate);
}

/**
 * The metadata of one request, with its trace: the client's context (`params._meta` over the HTTP
 * headers) and, when tracing is on, its SERVER span. Returns `meta` itself when nothing changes (no
 * tracing, no context in `_meta`); a copy otherwise (a batch's requests share the HTTP request's meta).
 */
export function traceRequest<M extends TraceFields>(
  tracing: Tracing | undefined,
  meta: M,
  req: JsonRpcRequest,
  route: string,
  sessionId: string | undefined,
  protocolVersion: string | undefined,
): M {
  const fromMeta = req.params?._meta === undefined ? undefined : metaContext(req);
  if (!tracing) {
    if (!fromMeta) return meta;
    return { ...meta, traceContext: fromMeta, traceId: fromMeta.traceId, spanId: fromMeta.spanId };
  }
  const parent = fromMeta ?? meta.traceContext;
  let span: RequestSpan;
  try {
    span = tracing.startRequest(req, route, sessionId, protocolVersion, parent);
  } catch {
    // Tracing never fails a call: without its span, the request still carries the client's context.
    return parent === meta.traceContext
      ? meta
      : { ...meta, traceContext: parent, traceId: parent?.traceId, spanId: parent?.spanId };
  }
  const sc = span.span.spanContext();
  return { ...meta, traceContext: parent, span, traceId: sc.traceId, spanId: sc.spanId };
}

/** One call to an upstream: the request as sent (trace context in `_meta`), its headers, its span. */
export interface UpstreamCall {
  request: JsonRpcRequest;
  /** traceparent (and tracestate) for an upstream reached over HTTP. */
  headers: Readonly<Record<string, string>>;
  /** The call's outcome: an answer, or the error it failed with. */
  end(response: JsonRpcResponse | undefined, err?: GatehouseError): void;
}

/**
 * The trace of a call to an upstream: with tracing, a CLIENT span whose context the upstream gets; else
 * the client's own context, passed on unchanged; undefined when there is neither (nothing to do).
 */
export function upstreamCall(
  meta: TraceFields,
  upstream: string,
  kind: string,
  name: string | undefined,
  request: JsonRpcRequest,
): UpstreamCall | undefined {
  if (meta.span) {
    try {
      return meta.span.upstreamCall(upstream, kind, name, request);
    } catch {
      return undefined; // tracing never fails a call
    }
  }
  const ctx = meta.traceContext;
  if (!ctx) return undefined;
  return {
    request: withTraceMeta(request, ctx.traceparent, ctx.tracestate),
    headers: headersOf(ctx),
    end() {},
  };
}

const headerCache = new WeakMap<TraceContext, Record<string, string>>();
function headersOf(ctx: TraceContext): Record<string, string> {
  let h = headerCache.get(ctx);
  if (!h) {
    h = ctx.tracestate
      ? { traceparent: ctx.traceparent, tracestate: ctx.tracestate }
      : { traceparent: ctx.traceparent };
    headerCache.set(ctx, h);
  }
  return h;
}

/** The request with this trace context in `params._meta` (the request itself when already so). */
export function withTraceMeta(
  req: JsonRpcRequest,
  traceparent: string,
  tracestate: string | undefined,
): JsonRpcRequest {
  const params = req.params;
  const old = params?._meta;
  const prior =
    typeof old === 'object' && old !== null && !Array.isArray(old)
      ? (old as Record<string, unknown>)
      : undefined;
  if (prior && prior.traceparent === traceparent && prior.tracestate === tracestate) return req;
  const meta: Record<string, unknown> = prior ? { ...prior, traceparent } : { traceparent };
  if (tracestate === undefined) delete meta.tracestate;
  else meta.tracestate = tracestate;
  return { ...req, params: { ...params, _meta: meta } };
}

/** Span names: `<method> <tool or prompt>` (resource URIs are attributes only: unbounded cardinality). */
/** Span names and attribute values come partly from clients: both are cut (a body-sized tool name stays out). */
const MAX_NAME = 256;
const MAX_ATTRIBUTE = 1_024;

function spanName(method: string, kind: string | undefined, name: string | undefined): string {
  const full = name !== undefined && (kind === 'tool' || kind === 'prompt') ? `${method} ${name}` : method;
  return full.length > MAX_NAME ? `${full.slice(0, MAX_NAME)}…` : full;
}

function targetAttribute(kind: string | undefined): string | undefined {
  return kind === 'tool'
    ? ATTR.tool
    : kind === 'prompt'
      ? ATTR.prompt
      : kind === 'resource'
        ? ATTR.resource
        : undefined;
}

/** The name or URI a request asks for, before the gateway resolves it. */
function askedTarget(req: JsonRpcRequest): { kind: string; name: string } | undefined {
  const p = req.params;
  if (!p) return undefined;
  switch (req.method) {
    case 'tools/call':
      return typeof p.name === 'string' ? { kind: 'tool', name: p.name } : undefined;
    case 'prompts/get':
      return typeof p.name === 'string' ? { kind: 'prompt', name: p.name } : undefined;
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return typeof p.uri === 'string' ? { kind: 'resource', name: p.uri } : undefined;
    default:
      return undefined;
  }
}

/** The SERVER span of one MCP request. */
export class RequestSpan {
  readonly span: Span;
  readonly #tracing: Tracing;
  readonly #method: string;
  #context: Context | undefined;
  #event: ExchangeEvent | undefined;
  #ended = false;

  constructor(tracing: Tracing, span: Span, method: string) {
    this.#tracing = tracing;
    this.span = span;
    this.#method = method;
  }

  /**
   * The exchange's outcome (the router's event). The last one recorded stands: a resource read tried on
   * several upstreams records each attempt.
   */
  record(e: ExchangeEvent): void {
    this.#event = e;
  }

  #apply(e: ExchangeEvent): void {
    const span = this.span;
    const kind = e.targetKind;
    const a: Attributes = {
      [ATTR.outcome]: e.outcome,
      [ATTR.decision]: e.outcome === 'denied' ? 'deny' : 'allow',
      [ATTR.httpStatus]: e.httpStatus,
    };
    if (e.sessionId !== undefined) a[ATTR.sessionId] = e.sessionId;
    if (e.upstream !== undefined) a[ATTR.upstream] = e.upstream;
    const key = targetAttribute(kind);
    if (key && e.target !== undefined) a[key] = e.target;
    if (e.reason !== undefined) a[ATTR.reason] = e.reason;
    if (e.rpcCode !== undefined) {
      a[ATTR.rpcCode] = String(e.rpcCode);
      a[ATTR.errorType] = String(e.rpcCode);
    } else if (e.isError) {
      a[ATTR.errorType] = 'tool_error';
    }
    if (this.#tracing.includeUser) {
      if (e.subject !== undefined) a[ATTR.userId] = e.subject;
      if (e.agent !== undefined) a[ATTR.agent] = e.agent;
      if (e.tenant !== undefined) a[ATTR.tenant] = e.tenant;
    }
    span.setAttributes(a);
    span.updateName(spanName(this.#method, kind, e.target));
    if (e.outcome !== 'ok' || e.isError) {
      const res = e.response;
      const message =
        res && 'error' in res ? res.error.message : e.isError ? 'the tool reported an error' : e.outcome;
      span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 256) });
    }
  }

  /** A CLIENT span for a call to an upstream, child of this one; the upstream gets its context. */
  upstreamCall(
    upstream: string,
    kind: string,
    name: string | undefined,
    request: JsonRpcRequest,
  ): UpstreamCall {
    this.#context ??= trace.setSpan(ROOT_CONTEXT, this.span);
    const attributes: Attributes = { [ATTR.method]: request.method, [ATTR.upstream]: upstream };
    const key = targetAttribute(kind);
    if (key && name !== undefined) attributes[key] = name;
    const span = this.#tracing.tracer.startSpan(
      spanName(request.method, kind, name),
      { kind: SpanKind.CLIENT, attributes },
      this.#context,
    );
    const sc = span.spanContext();
    const traceparent = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
    const tracestate = sc.traceState?.serialize() || undefined;
    return {
      request: withTraceMeta(request, traceparent, tracestate),
      headers: tracestate ? { traceparent, tracestate } : { traceparent },
      end(response, err) {
        try {
          if (span.isRecording()) recordCall(span, response, err);
          span.end();
        } catch {
          // tracing never fails a call
        }
      },
    };
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (this.#event && this.span.isRecording()) this.#apply(this.#event);
      this.span.end();
    } catch {
      // tracing never fails a call
    }
  }
}

/** A CLIENT span's outcome: the upstream's answer, or the error the call failed with. */
function recordCall(
  span: Span,
  response: JsonRpcResponse | undefined,
  err: GatehouseError | undefined,
): void {
  if (err) {
    span.setAttributes({ [ATTR.errorType]: err.code, [ATTR.rpcCode]: String(err.rpcCode) });
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.message.slice(0, 256) });
    return;
  }
  if (!response) return;
  const status = (response as { [UPSTREAM_CODE]?: number })[UPSTREAM_CODE];
  if (status !== undefined) span.setAttribute(ATTR.httpStatus, status);
  if ('error' in response) {
    const code = String(response.error.code);
    span.setAttributes({ [ATTR.rpcCode]: code, [ATTR.errorType]: code });
    span.setStatus({ code: SpanStatusCode.ERROR, message: response.error.message.slice(0, 256) });
  } else if (response.result.isError === true) {
    span.setAttribute(ATTR.errorType, 'tool_error');
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'the tool reported an error' });
  }
}

export interface TracingOptions {
  /** OTLP/HTTP traces URL; absent: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else http://localhost:4318/v1/traces. */
  endpoint?: string | undefined;
  /** Headers of the export requests (secrets resolved). */
  headers: Record<string, string>;
  serviceName: string;
  serviceVersion: string;
  /** Ratio of new traces sampled (parent-based: a client's sampled flag is followed). */
  sampleRatio: number;
  /** Record the caller's subject, agent and tenant on spans. */
  includeUser: boolean;
  /** Longest wait of a finished span before its batch is exported, ms. */
  exportDelayMs: number;
  logger: Logger;
}

/** The gateway's tracer and its export pipeline. */
export class Tracing {
  readonly tracer: Tracer;
  readonly includeUser: boolean;
  readonly #shutdown: () => Promise<void>;

  constructor(tracer: Tracer, includeUser: boolean, shutdown: () => Promise<void>) {
    this.tracer = tracer;
    this.includeUser = includeUser;
    this.#shutdown = shutdown;
  }

  startRequest(
    req: JsonRpcRequest,
    route: string,
    sessionId: string | undefined,
    protocolVersion: string | undefined,
    parent: TraceContext | undefined,
  ): RequestSpan {
    const attributes: Attributes = { [ATTR.method]: req.method, [ATTR.route]: route };
    if (sessionId !== undefined) attributes[ATTR.sessionId] = sessionId;
    if (protocolVersion !== undefined) attributes[ATTR.protocolVersion] = protocolVersion;
    attributes[ATTR.requestId] = String(req.id);
    const asked = askedTarget(req);
    const key = targetAttribute(asked?.kind);
    if (key) attributes[key] = asked!.name;
    const span = this.tracer.startSpan(
      spanName(req.method, asked?.kind, asked?.name),
      { kind: SpanKind.SERVER, attributes },
      parent ? parentContext(parent) : ROOT_CONTEXT,
    );
    return new RequestSpan(this, span, req.method);
  }

  /** Exports what is queued (within `timeoutMs`) and stops. */
  async shutdown(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#shutdown().catch(() => {}),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}

function parentContext(p: TraceContext): Context {
  let traceState: TraceState | undefined;
  if (p.tracestate) traceState = createTraceState(p.tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: p.traceId,
    spanId: p.spanId,
    traceFlags: p.flags,
    isRemote: true,
    ...(traceState ? { traceState } : {}),
  });
}

/** Builds the tracer and its OTLP/HTTP exporter (the SDK is loaded only when tracing is on). */
export async function startTracing(o: TracingOptions): Promise<Tracing> {
  const [
    { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, AlwaysOnSampler, TracerProvider },
    otlp,
    resources,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } = await import('@opentelemetry/semantic-conventions');
  routeDiagnostics(o.logger);
  const exporter = new otlp.OTLPTraceExporter({
    ...(o.endpoint ? { url: o.endpoint } : {}),
    headers: o.headers,
    // Retries (with backoff) stop within this: a down collector is reported within seconds.
    timeoutMillis: 5_000,
  });
  const provider = new TracerProvider({
    resource: resources.defaultResource().merge(
      resources.resourceFromAttributes({
        [ATTR_SERVICE_NAME]: o.serviceName,
        [ATTR_SERVICE_VERSION]: o.serviceVersion,
      }),
    ),
    spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE },
    sampler: new ParentBasedSampler({
      root: o.sampleRatio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(o.sampleRatio),
    }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        scheduledDelayMillis: o.exportDelayMs,
        maxQueueSize: 2048,
        maxExportBatchSize: 512,
        exportTimeoutMillis: 6_000,
      }),
    ],
  });
  o.logger.info(
    {
      endpoint: o.endpoint ?? '(OTEL_EXPORTER_OTLP_* or http://localhost:4318/v1/traces)',
      sampleRatio: o.sampleRatio,
    },
    'tracing on: spans exported over OTLP/HTTP',
  );
  return new Tracing(provider.getTracer('gatehouse', o.serviceVersion), o.includeUser, () =>
    provider.shutdown(),
  );
}

/** Export failures (OpenTelemetry's diagnostics) reach the gateway's log, at most once a minute. */
let diagnosticsLogger: Logger | undefined;
function routeDiagnostics(logger: Logger): void {
  const first = diagnosticsLogger === undefined;
  diagnosticsLogger = logger;
  if (!first) return;
  let last = 0;
  let suppressed = 0;
  const report = (...args: unknown[]) => {
    const now = Date.now();
    if (now - last < 60_000) {
      suppressed++;
      return;
    }
    last = now;
    const detail = args
      .map((a) => (a instanceof Error ? a.message : String(a)))
      .join(' ')
      .slice(0, 500);
    diagnosticsLogger?.warn(
      { suppressed, detail },
      'tracing: OpenTelemetry reported a problem, e.g. a failed span export (calls are not affected)',
    );
    suppressed = 0;
  };
  diag.setLogger(
    { error: report, warn: report, info() {}, debug() {}, verbose() {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}
