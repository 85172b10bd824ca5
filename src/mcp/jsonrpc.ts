// JSON-RPC 2.0 message model and strict parsing for the hot path. Messages are kept as the plain
// objects JSON.parse produced: the gateway rewrites ids and routes without rebuilding them.

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcSuccess {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: Record<string, unknown>;
}

export interface JsonRpcFailure {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcSuccess | JsonRpcFailure;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** Standard JSON-RPC codes, and MCP's, that the gateway produces itself. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** The answer to a request its sender cancelled, where an answer is owed anyway (a JSON HTTP reply). */
  RequestCancelled: -32800,
} as const;

export function isRequest(m: JsonRpcMessage): m is JsonRpcRequest {
  return 'method' in m && 'id' in m;
}

export function isNotification(m: JsonRpcMessage): m is JsonRpcNotification {
  return 'method' in m && !('id' in m);
}

export function isResponse(m: JsonRpcMessage): m is JsonRpcResponse {
  return !('method' in m);
}

export function errorResponse(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcFailure {
  const error: JsonRpcErrorObject = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

/** Why a value is not a valid JSON-RPC message, or undefined when it is one. */
export function invalidMessageReason(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return 'a JSON-RPC message must be a JSON object';
  const m = v as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return '"jsonrpc" must be exactly "2.0"';
  const hasId = 'id' in m;
  // An error response may have a null id (the sender could not read the request's), as SDK servers send.
  const nullIdError = m.id === null && 'error' in m && !('method' in m);
  if (hasId && !isValidId(m.id) && !nullIdError) {
    return '"id" must be a string or an integer (MCP does not allow null ids)';
  }
  if ('method' in m) {
    if (typeof m.method !== 'string' || m.method.length === 0) return '"method" must be a non-empty string';
    if ('params' in m && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) {
      return '"params" must be an object';
    }
    if ('result' in m || 'error' in m) return 'a message cannot have both "method" and "result"/"error"';
    return undefined;
  }
  if (!hasId)
    return 'a message needs "method" (request or notification) or "id" with "result"/"error" (response)';
  const hasResult = 'result' in m;
  const hasError = 'error' in m;
  if (hasResult === hasError) return 'a response must have exactly one of "result" and "error"';
  if (hasResult && (typeof m.result !== 'object' || m.result === null || Array.isArray(m.result))) {
    return '"result" must be an object';
  }
  if (hasError) {
    const e = m.error as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || !Number.isInteger(e.code) || typeof e.message !== 'string') {
      return '"error" must be an object with an integer "code" and a string "message"';
    }
  }
  return undefined;
}

function isValidId(id: unknown): id is JsonRpcId {
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id));
}

/** A key usable in a Map for ids of either type (1 and "1" are different ids). */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

export type ParsedBody =
  | { ok: true; batch: false; messages: [JsonRpcMessage] }
  | { ok: true; batch: true; messages: JsonRpcMessage[] }
  | { ok: false; code: number; message: string };

/** Parses an HTTP body into one message or a batch, with a precise reason on failure. */
export function parseBody(text: string): ParsedBody {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, code: ErrorCode.ParseError, message: `Parse error: ${(err as Error).message}` };
  }
  if (Array.isArray(v)) {
    if (v.length === 0)
      return { ok: false, code: ErrorCode.InvalidRequest, message: 'Invalid Request: empty batch' };
    for (let i = 0; i < v.length; i++) {
      const reason = invalidMessageReason(v[i]);
      if (reason)
        return {
          ok: false,
          code: ErrorCode.InvalidRequest,
          message: `Invalid Request: batch item ${i}: ${reason}`,
        };
    }
    return { ok: true, batch: true, messages: v as JsonRpcMessage[] };
  }
  const reason = invalidMessageReason(v);
  if (reason) return { ok: false, code: ErrorCode.InvalidRequest, message: `Invalid Request: ${reason}` };
  return { ok: true, batch: false, messages: [v as JsonRpcMessage] };
}

/**
 * A response may carry its result already serialised (a cached page of a list): serialize() then writes
 * that text instead of serialising the result again. Symbol-keyed, so JSON.stringify never sees it.
 */
export const RAW_RESULT: unique symbol = Symbol('gatehouse.rawResult');

/** The already serialised (UTF-8) result of a response, when it has one. */
export function rawResult(m: JsonRpcMessage): Buffer | undefined {
  return (m as { [RAW_RESULT]?: Buffer })[RAW_RESULT];
}

/**
 * The upstream's own answer code, carried on a response the upstream produced (symbol-keyed, never
 * serialised): the HTTP status of a REST API or of an MCP server's POST. For audit and metrics.
 */
export const UPSTREAM_CODE: unique symbol = Symbol('gatehouse.upstreamCode');

export function withUpstreamCode<T extends JsonRpcResponse>(res: T, code: number): T {
  (res as { [UPSTREAM_CODE]?: number })[UPSTREAM_CODE] = code;
  return res;
}

/**
 * An answer that, where the transport allows (a single request answered with JSON), goes out with this
 * HTTP status and these headers instead of 200 — a step-up challenge (403 insufficient_scope). In a batch
 * or on a stream, the JSON-RPC error alone stands.
 */
export const HTTP_ANSWER: unique symbol = Symbol('gatehouse.httpAnswer');

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
}

export function httpAnswer(m: JsonRpcMessage): HttpAnswer | undefined {
  return (m as { [HTTP_ANSWER]?: HttpAnswer })[HTTP_ANSWER];
}

const finalTexts = new WeakMap<object, string | undefined>();

/**
 * serialize() of a final answer, remembered for that object: the audit's byte count and the endpoint's
 * write share one JSON.stringify. Only for answers no one changes after they are emitted.
 */
export function serializeFinal(m: JsonRpcMessage): string | undefined {
  if (finalTexts.has(m)) return finalTexts.get(m);
  const text = serialize(m);
  finalTexts.set(m, text);
  return text;
}

/**
 * JSON text of a message for the wire. JSON.stringify recurses, so a pathologically deep message (which
 * JSON.parse accepted) can overflow the stack: a response then becomes an error answer with the same id,
 * and any other message is dropped (undefined).
 */
export function serialize(m: JsonRpcMessage): string | undefined {
  const raw = (m as { [RAW_RESULT]?: Buffer })[RAW_RESULT];
  if (raw !== undefined)
    return `{"jsonrpc":"2.0","id":${JSON.stringify((m as JsonRpcSuccess).id)},"result":${raw.toString('utf8')}}`;
  try {
    return JSON.stringify(m);
  } catch {
    if ('method' in m || !('id' in m)) return undefined;
    return JSON.stringify(errorResponse(m.id, -32004, 'The answer is nested too deeply to be relayed'));
  }
}
