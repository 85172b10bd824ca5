// Small readers of an HTTP request that both MCP transports (Streamable HTTP and legacy SSE) share.

import type { FastifyRequest } from 'fastify';
import type { RequestMeta } from '../gateway/router.ts';
import { traceContext } from '../telemetry/tracing.ts';
import { accepts } from './guards.ts';

export const JSON_TYPE = 'application/json';

/** Whether a Content-Type is JSON (parameters such as charset allowed); memoised like Accept. */
const typeMemo = new Map<string, boolean>();
export function isJsonType(type: string | undefined): boolean {
  if (type === undefined) return false;
  let ok = typeMemo.get(type);
  if (ok === undefined) {
    ok = type.split(';')[0]!.trim().toLowerCase() === JSON_TYPE;
    if (typeMemo.size < 256) typeMemo.set(type, ok);
  }
  return ok;
}

/** Whether an Accept header admits both answer types; clients send few distinct values, so it is memoised. */
const acceptMemo = new Map<string, boolean>();
export function acceptsBoth(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  let ok = acceptMemo.get(accept);
  if (ok === undefined) {
    ok = accepts(accept, JSON_TYPE) && accepts(accept, 'text/event-stream');
    if (acceptMemo.size < 256) acceptMemo.set(accept, ok);
  }
  return ok;
}

export function meta(req: FastifyRequest): RequestMeta {
  const length = req.headers['content-length'];
  // A client's W3C trace context (validated; a request's params._meta may override it, see tracing.ts).
  const traceparent = req.headers.traceparent;
  const trace = traceparent === undefined ? undefined : traceContext(traceparent, req.headers.tracestate);
  return {
    requestId: String(req.id),
    principal: undefined,
    startedAt: Date.now(),
    t0: performance.now(),
    // fastify's req.ip honours trust_proxy (X-Forwarded-For only from a trusted proxy).
    clientIp: req.ip,
    userAgent: header(req, 'user-agent'),
    bytesIn: contentLength(length),
    traceContext: trace,
    traceId: trace?.traceId,
    spanId: trace?.spanId,
  };
}

/**
 * A Content-Length header's value, when it is a plain decimal below 10^15 (a client's header: audit records
 * and byte counters must not take `1e400`, NaN or an out-of-range figure from it).
 */
export function contentLength(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined;
}

export function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
