// The audit record: its columns (one list, in the order the hash chain serialises them), the row a sink
// stores, and how an exchange event becomes one — cheaply on the request path, with payloads and byte
// counts derived later, off it.

import { randomBytes } from 'node:crypto';
import type { JsonRpcRequest, JsonRpcResponse } from '../mcp/jsonrpc.ts';
import { type ExchangeEvent, responseBytes } from '../telemetry/events.ts';

/** Every column of a stored record, in canonical order (the hash chain serialises them so). */
export const COLUMNS = [
  'seq',
  'id',
  'ts',
  'user_id',
  'agent_identity',
  'tenant',
  'mcp_server',
  'route',
  'mcp_method',
  'tool_name',
  'resource_uri',
  'prompt_name',
  'decision',
  'reason',
  'outcome',
  'response_code',
  'jsonrpc_code',
  'upstream_response_code',
  'is_error',
  'latency_ms',
  'upstream_latency_ms',
  'request_bytes',
  'response_bytes',
  'session_id',
  'request_id',
  'rpc_id',
  'trace_id',
  'span_id',
  'client_ip',
  'user_agent',
  'error_message',
  'arguments',
  'result',
  'prev_hash',
  'hash',
] as const;

export type Column = (typeof COLUMNS)[number];

/** A record as a sink receives it: everything but its place in the chain. */
export interface AuditRow {
  id: string;
  /** Epoch ms when the gateway received the request. */
  ts: number;
  user_id: string | null;
  agent_identity: string | null;
  tenant: string | null;
  /** The upstream that handled it. */
  mcp_server: string | null;
  route: string;
  mcp_method: string | null;
  tool_name: string | null;
  resource_uri: string | null;
  prompt_name: string | null;
  decision: 'allow' | 'deny';
  reason: string | null;
  outcome: string;
  /** HTTP status of the answer. */
  response_code: number;
  /** JSON-RPC error code of the answer, when it is an error. */
  jsonrpc_code: number | null;
  /** The upstream's own status (REST) or JSON-RPC error code, when known. */
  upstream_response_code: number | null;
  /** The caller got a failure: a JSON-RPC error, an isError result, or an HTTP error. */
  is_error: boolean;
  latency_ms: number;
  upstream_latency_ms: number | null;
  request_bytes: number | null;
  response_bytes: number | null;
  session_id: string | null;
  request_id: string | null;
  rpc_id: string | null;
  trace_id: string | null;
  span_id: string | null;
  client_ip: string | null;
  user_agent: string | null;
  error_message: string | null;
  /** JSON text of the arguments, when the route records payloads. */
  arguments: string | null;
  /** JSON text of the result (or error), when the route records results. */
  result: string | null;
}

/** A record as stored: its row, its place in the sink's chain and its hash. */
export interface StoredRecord extends AuditRow {
  seq: number;
  prev_hash: string;
  hash: string;
}

/** What the route says about payloads, compiled once (see privacy.ts). */
export interface PayloadPolicy {
  arguments: boolean;
  results: boolean;
  /** Serialises a payload with redactions applied; `args` says whether argument paths apply. */
  render(value: unknown, args: boolean): string;
}

/** Longest reason, error message or user agent kept (they may carry client-chosen text). */
const MAX_TEXT = 512;

/** Longest method, tool or prompt name and JSON-RPC id kept, and longest resource URI (client-chosen too). */
const MAX_NAME = 1024;
const MAX_URI = 4096;

const cap = (s: string | undefined, max = MAX_TEXT): string | null =>
  s === undefined || s === '' ? null : s.length > max ? `${s.slice(0, max)}…` : s;

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** Unique record ids, cheap: a random prefix per process and a counter. */
const ID_PREFIX = randomBytes(6).toString('base64url');
let idCounter = 0;
export function newRecordId(): string {
  return `${ID_PREFIX}${(++idCounter).toString(36)}`;
}

/**
 * A record waiting in a queue: built on the request path from an event with plain field copies; payloads
 * (when the route records them) are serialised later, once, by `row()`.
 */
export class PendingRecord {
  readonly #row: AuditRow;
  #request: JsonRpcRequest | undefined;
  #response: JsonRpcResponse | undefined;
  #payloads: PayloadPolicy | undefined;

  constructor(row: AuditRow, payloads?: PayloadPolicy, request?: JsonRpcRequest, response?: JsonRpcResponse) {
    this.#row = row;
    if (payloads && (payloads.arguments || payloads.results)) {
      this.#payloads = payloads;
      this.#request = request;
      this.#response = response;
    }
  }

  get id(): string {
    return this.#row.id;
  }

  get ts(): number {
    return this.#row.ts;
  }

  /** The complete row (payloads rendered on first use, then the references dropped). */
  row(): AuditRow {
    const p = this.#payloads;
    if (p) {
      this.#payloads = undefined;
      const req = this.#request;
      const res = this.#response;
      this.#request = undefined;
      this.#response = undefined;
      if (p.arguments && req?.params) {
        const params = req.params;
        const args =
          req.method === 'tools/call' || req.method === 'prompts/get'
            ? params.arguments
            : withoutMeta(params);
        if (args !== undefined) this.#row.arguments = p.render(args, true);
      }
      if (p.results && res) {
        this.#row.result = p.render('error' in res ? { error: res.error } : res.result, false);
      }
    }
    return this.#row;
  }
}

/** The record of one exchange (plain copies: this runs on the request path). */
export function recordOf(e: ExchangeEvent, payloads: PayloadPolicy | undefined): PendingRecord {
  const res = e.response;
  const error = res && 'error' in res ? res.error : undefined;
  const kind = e.targetKind ?? kindOf(e.mcpMethod);
  const target = e.target;
  const deny = e.outcome === 'denied' || e.httpStatus >= 400;
  const upstreamCalled = e.upstreamMs !== undefined && e.upstream !== undefined;
  const row: AuditRow = {
    id: newRecordId(),
    ts: e.startedAt,
    user_id: e.subject ?? null,
    agent_identity: e.agent ?? null,
    tenant: e.tenant ?? null,
    mcp_server: e.upstream ?? null,
    route: e.route,
    mcp_method: cap(e.mcpMethod, MAX_NAME),
    tool_name: kind === 'tool' ? cap(target, MAX_NAME) : null,
    resource_uri: kind === 'resource' ? cap(target, MAX_URI) : null,
    prompt_name: kind === 'prompt' ? cap(target, MAX_NAME) : null,
    decision: deny ? 'deny' : 'allow',
    reason: cap(e.reason ?? (deny ? error?.message : undefined)),
    outcome: e.outcome,
    response_code: e.httpStatus,
    jsonrpc_code: e.rpcCode ?? null,
    upstream_response_code:
      e.upstreamCode ?? (upstreamCalled && e.outcome === 'error' ? (e.rpcCode ?? null) : null),
    is_error: e.isError === true || e.rpcCode !== undefined || e.httpStatus >= 400,
    latency_ms: round(e.durationMs),
    upstream_latency_ms: e.upstreamMs === undefined ? null : round(e.upstreamMs),
    request_bytes: e.requestBytes ?? null,
    response_bytes: responseBytes(e) ?? null,
    session_id: e.sessionId ?? null,
    request_id: e.requestId || null,
    rpc_id: e.request ? cap(JSON.stringify(e.request.id), MAX_NAME) : null,
    trace_id: e.traceId ?? null,
    span_id: e.spanId ?? null,
    client_ip: e.clientIp ?? null,
    user_agent: cap(e.userAgent),
    error_message: cap(error?.message),
    arguments: null,
    result: null,
  };
  return new PendingRecord(row, payloads, e.request, res);
}

function kindOf(method: string): 'tool' | 'resource' | 'prompt' | undefined {
  if (method.startsWith('tools/')) return 'tool';
  if (method.startsWith('resources/')) return 'resource';
  if (method.startsWith('prompts/')) return 'prompt';
  return undefined;
}

function withoutMeta(params: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(params)) {
    if (k === '_meta') continue;
    out[k] = v;
    n++;
  }
  return n === 0 ? undefined : out;
}
