// The upstream seam: every kind of upstream (streamable-http now; sse, stdio, rest later) implements these.

import type { JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../mcp/jsonrpc.ts';

/** What the downstream client declared at initialize; carried into each upstream session. */
export interface ClientInfo {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
}

export type UpstreamStatus = 'unknown' | 'up' | 'down';

export interface UpstreamHealth {
  status: UpstreamStatus;
  /** When the status last changed (epoch ms). */
  since: number;
  /** The last failure, in words, when down. */
  lastError?: string;
  inFlight: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Total time allowed for the answer; defaults to the upstream's request_timeout. */
  timeoutMs?: number;
  /** Notifications and server→client requests the upstream sends while answering this request. */
  onMessage?(m: JsonRpcNotification | JsonRpcRequest): void;
  /** Called once if the upstream chose to answer with an SSE stream (so the edge can mirror it). */
  onStream?(): void;
  /**
   * The upstream closed its stream before answering, on purpose (2025-11-25 polling); the gateway resumes
   * it. The edge may mirror the pause to a client that can resume too.
   */
  onPause?(): void;
  /** The gateway's own bookkeeping (catalogue refresh): not counted against max_concurrency, never refused by it. */
  internal?: boolean;
  /**
   * W3C trace context headers (traceparent, tracestate) for this request, sent by upstreams reached over
   * HTTP (the request's params._meta carries the same context for every kind).
   */
  trace?: Readonly<Record<string, string>> | undefined;
}

export interface UpstreamSession {
  readonly upstream: string;
  /** The version negotiated with the upstream (may differ from the client's). */
  readonly protocolVersion: string;
  /** The upstream's initialize result (capabilities, serverInfo, instructions). */
  readonly initializeResult: Record<string, unknown>;
  /** Sends a request; ids are rewritten for the upstream and restored on the returned response. */
  request(req: JsonRpcRequest, opts?: RequestOptions): Promise<JsonRpcResponse>;
  notify(n: JsonRpcNotification): Promise<void>;
  /** Answers a server→client request the upstream sent (id is the upstream's original id). */
  respond(res: JsonRpcResponse): Promise<void>;
  /** Cancels a request in flight by the id the caller passed to request(). */
  cancel(id: JsonRpcRequest['id'], reason?: string): Promise<void>;
  /** Messages the upstream sends outside any request (its GET stream). */
  onServerMessage(handler: (m: JsonRpcMessage) => void): void;
  /** True once the upstream has forgotten this session (it must be re-opened). */
  readonly closed: boolean;
  close(): Promise<void>;
}

/** Who an upstream session serves, as far as an upstream may learn it (a Principal is one). */
export interface Caller {
  source?: 'oauth' | 'api_key';
  subject: string;
  groups: readonly string[];
  agent?: string;
  tenant?: string;
}

export interface ConnectOptions {
  /**
   * The gateway's own session (the catalogue's): it never counts against caps meant for client sessions
   * (stdio max_processes), and identifies itself to the upstream as the gateway.
   */
  internal?: boolean;
  /**
   * The caller of a client session, as of now (a caller may present a fresh token within one session);
   * absent, or answering undefined: an anonymous caller (a route without auth).
   */
  caller?: () => Caller | undefined;
}

/**
 * The credential one upstream session presents (upstream `auth`): headers added to each of its requests.
 * Never the caller's own token.
 */
export interface CredentialSource {
  /**
   * The current credential's headers: the same object, synchronously, while it is valid (the hot path);
   * a promise when it must be (re)obtained. Rejects with an error naming the upstream when none can be
   * had: the request is then not sent.
   */
  headers(): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>;
}

/** The code of the error a CredentialSource rejects with: the upstream was not called, nor is it down. */
export const CREDENTIAL_ERROR_CODE = 'ERR_UPSTREAM_CREDENTIAL';

/** Makes the credential source of each upstream session (one per upstream with `auth`). */
export interface CredentialProvider {
  forSession(opts: ConnectOptions): CredentialSource;
}

export interface Upstream {
  readonly name: string;
  /**
   * A new upstream session, for a client session (`caller`) or the gateway's own (`internal`).
   */
  connect(client: ClientInfo, opts?: ConnectOptions): Promise<UpstreamSession>;
  health(): UpstreamHealth;
  /** Outcomes that feed health(): from the catalogue's refreshes (the MCP-aware probe) and from calls. */
  markUp(): void;
  markDown(err: unknown): void;
  close(): Promise<void>;
}
