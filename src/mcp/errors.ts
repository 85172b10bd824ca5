// The GatehouseError family: every error the gateway raises has a stable `code`, the JSON-RPC code and
// HTTP status it maps to, and a message that tells the reader what to do.

import { ErrorCode, errorResponse, type JsonRpcFailure, type JsonRpcId } from './jsonrpc.ts';

/** JSON-RPC codes of our own live in -32000..-32019 (-32020 and above are reserved by the 2026-07-28 spec). */
export const GatewayCode = {
  /** The HTTP request is unacceptable at the transport level (headers, method, size, origin). */
  Transport: -32000,
  /** An upstream could not be reached, or its connection broke before it answered. */
  UpstreamUnavailable: -32001,
  /** An upstream did not answer within its request timeout. */
  UpstreamTimeout: -32003,
  /** An upstream answered with something that is not valid MCP (malformed, oversized). */
  UpstreamProtocol: -32004,
  /** The Mcp-Session-Id names no live session of this gateway. */
  SessionNotFound: -32005,
  /** A configured capacity (sessions, concurrency) is exhausted; retry later. */
  Overloaded: -32006,
  /** The gateway is shutting down. */
  ShuttingDown: -32007,
  /** A policy stage refused the call. */
  PolicyDenied: -32010,
} as const;

export class GatehouseError extends Error {
  /** Stable machine-readable code, e.g. ERR_SESSION_NOT_FOUND. */
  readonly code: string;
  readonly rpcCode: number;
  readonly httpStatus: number;
  readonly data: unknown;
  /** HTTP headers the answer must carry (WWW-Authenticate of a 401/403). */
  headers: Record<string, string> | undefined;

  constructor(code: string, rpcCode: number, httpStatus: number, message: string, data?: unknown) {
    super(message);
    this.name = 'GatehouseError';
    this.code = code;
    this.rpcCode = rpcCode;
    this.httpStatus = httpStatus;
    this.data = data;
  }

  toResponse(id: JsonRpcId | null): JsonRpcFailure {
    return errorResponse(id, this.rpcCode, this.message, this.data);
  }
}

const make =
  (code: string, rpcCode: number, httpStatus: number) =>
  (message: string, data?: unknown): GatehouseError =>
    new GatehouseError(code, rpcCode, httpStatus, message, data);

export const Errors = {
  parse: make('ERR_PARSE', ErrorCode.ParseError, 400),
  invalidRequest: make('ERR_INVALID_REQUEST', ErrorCode.InvalidRequest, 400),
  methodNotFound: make('ERR_METHOD_NOT_FOUND', ErrorCode.MethodNotFound, 200),
  invalidParams: make('ERR_INVALID_PARAMS', ErrorCode.InvalidParams, 200),
  internal: make('ERR_INTERNAL', ErrorCode.InternalError, 500),
  badHeader: make('ERR_BAD_HEADER', GatewayCode.Transport, 400),
  sessionRequired: make('ERR_SESSION_REQUIRED', GatewayCode.Transport, 400),
  sessionNotFound: make('ERR_SESSION_NOT_FOUND', GatewayCode.SessionNotFound, 404),
  forbiddenOrigin: make('ERR_FORBIDDEN_ORIGIN', GatewayCode.Transport, 403),
  forbidden: make('ERR_FORBIDDEN', GatewayCode.Transport, 403),
  identityProviderUnavailable: make('ERR_IDP_UNAVAILABLE', GatewayCode.UpstreamUnavailable, 503),
  forbiddenHost: make('ERR_FORBIDDEN_HOST', GatewayCode.Transport, 403),
  notAcceptable: make('ERR_NOT_ACCEPTABLE', GatewayCode.Transport, 406),
  unsupportedMediaType: make('ERR_UNSUPPORTED_MEDIA_TYPE', GatewayCode.Transport, 415),
  payloadTooLarge: make('ERR_PAYLOAD_TOO_LARGE', GatewayCode.Transport, 413),
  methodNotAllowed: make('ERR_METHOD_NOT_ALLOWED', GatewayCode.Transport, 405),
  conflict: make('ERR_CONFLICT', GatewayCode.Transport, 409),
  overloaded: make('ERR_OVERLOADED', GatewayCode.Overloaded, 503),
  shuttingDown: make('ERR_SHUTTING_DOWN', GatewayCode.ShuttingDown, 503),
  upstreamUnavailable: make('ERR_UPSTREAM_UNAVAILABLE', GatewayCode.UpstreamUnavailable, 502),
  upstreamTimeout: make('ERR_UPSTREAM_TIMEOUT', GatewayCode.UpstreamTimeout, 504),
  upstreamProtocol: make('ERR_UPSTREAM_PROTOCOL', GatewayCode.UpstreamProtocol, 502),
  policyDenied: make('ERR_POLICY_DENIED', GatewayCode.PolicyDenied, 403),
  unauthorized: make('ERR_UNAUTHORIZED', GatewayCode.Transport, 401),
  cancelled: make('ERR_CANCELLED', ErrorCode.RequestCancelled, 200),
} as const;

export function asGatehouseError(err: unknown): GatehouseError {
  if (err instanceof GatehouseError) return err;
  return Errors.internal(`Internal error: ${err instanceof Error ? err.message : String(err)}`);
}
