// One event per exchange, emitted at its end: the seam where audit, metrics and traces plug in. Sinks
// must not block the request path; the default sink does nothing. Events carry references to the request
// and the answer (never copies): a sink that needs bytes or payloads derives them, once, with the helpers
// below.

import { type JsonRpcRequest, type JsonRpcResponse, rawResult, serializeFinal } from '../mcp/jsonrpc.ts';

export type Outcome = 'ok' | 'error' | 'denied' | 'upstream_error' | 'cancelled';

export interface ExchangeEvent {
  /** Epoch ms when the gateway received the message. */
  startedAt: number;
  route: string;
  sessionId: string | undefined;
  /** The principal's subject, when identity is configured. */
  subject: string | undefined;
  mcpMethod: string;
  /** The upstream that handled it, when one did. */
  upstream: string | undefined;
  /** tool name / resource uri / prompt name, when the method has one. */
  target: string | undefined;
  outcome: Outcome;
  httpStatus: number;
  /** JSON-RPC error code of the answer, when it is an error. */
  rpcCode: number | undefined;
  /** Total time in the gateway, ms (fractional). */
  durationMs: number;
  /** Time waiting for the upstream, ms (fractional), when one was called. */
  upstreamMs: number | undefined;
  requestId: string;
  /** Why a policy decided as it did (ACL), for audit. */
  reason?: string;
  /** The principal's agent and tenant, when known. */
  agent?: string | undefined;
  tenant?: string | undefined;
  /** What `target` names. */
  targetKind?: 'tool' | 'resource' | 'prompt' | undefined;
  /** A tool result that reports a failure (`isError: true`). */
  isError?: boolean | undefined;
  /** The upstream's own answer code: its HTTP status (REST), or its JSON-RPC error code, when known. */
  upstreamCode?: number | undefined;
  /** The caller's address (the proxy's client when trust_proxy says so) and User-Agent. */
  clientIp?: string | undefined;
  userAgent?: string | undefined;
  /** Size of the HTTP request body this message came in (a batch's members share it). */
  requestBytes?: number | undefined;
  /** W3C trace context of the exchange, when tracing (or a client) gave one. */
  traceId?: string | undefined;
  spanId?: string | undefined;
  /** The request and the answer, by reference (for payload audit and byte counts). */
  request?: JsonRpcRequest | undefined;
  response?: JsonRpcResponse | undefined;
}

const responseSizes = new WeakMap<ExchangeEvent, number>();

/** Size in bytes of the answer's JSON (cached pages are not serialised again); computed once per event. */
export function responseBytes(e: ExchangeEvent): number | undefined {
  if (!e.response) return undefined;
  let n = responseSizes.get(e);
  if (n === undefined) {
    const raw = rawResult(e.response);
    n = raw ? raw.length + 40 : Buffer.byteLength(serializeFinal(e.response) ?? '');
    responseSizes.set(e, n);
  }
  return n;
}

export interface ExchangeSink {
  emit(event: ExchangeEvent): void;
}

export const noopSink: ExchangeSink = { emit() {} };

/** Fans one event out to several sinks; a failing sink never breaks the exchange or the others. */
export function fanOut(sinks: readonly ExchangeSink[]): ExchangeSink {
  if (sinks.length === 0) return noopSink;
  if (sinks.length === 1) return sinks[0]!;
  return {
    emit(event) {
      for (const s of sinks) {
        try {
          s.emit(event);
        } catch {
          // sinks own their failures (counted and logged there)
        }
      }
    },
  };
}
