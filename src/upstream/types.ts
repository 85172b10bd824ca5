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

export interface Upstream {
  readonly name: string;
  /**
   * A new upstream session. `internal` marks the gateway's own (the catalogue's): it never counts against
   * caps meant for client sessions (stdio max_processes).
   */
  connect(client: ClientInfo, opts?: { internal?: boolean }): Promise<UpstreamSession>;
  health(): UpstreamHealth;
  /** Outcomes that feed health(): from the catalogue's refreshes (the MCP-aware probe) and from calls. */
  markUp(): void;
  markDown(err: unknown): void;
  close(): Promise<void>;
}
