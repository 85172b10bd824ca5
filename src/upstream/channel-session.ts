// An MCP session over any message channel (a stdio process's pipes, a legacy SSE stream + POSTs): ids
// and progress tokens rewritten per session, answers matched to requests, timeouts and cancellation,
// server→client traffic routed to the request it belongs to when that can be told.

import { Errors, GatehouseError } from '../mcp/errors.ts';
import {
  ErrorCode,
  idKey,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../mcp/jsonrpc.ts';
import { isSupportedVersion } from '../mcp/versions.ts';
import type { Logger } from '../telemetry/logger.ts';
import {
  type ClientInfo,
  CREDENTIAL_ERROR_CODE,
  type RequestOptions,
  type UpstreamSession,
} from './types.ts';

/** Where an upstream's messages travel: framing and the transport are the channel's business. */
export interface MessageChannel {
  /**
   * Rejects when the channel is gone. `headers`: a request's trace context, for channels that speak HTTP
   * (the message's params._meta carries it too).
   */
  send(m: JsonRpcMessage, headers?: Readonly<Record<string, string>>): Promise<void>;
  onMessage(handler: (m: JsonRpcMessage) => void): void;
  /** Called once when the channel ends (process exit, stream closed), with why. */
  onClose(handler: (reason: string) => void): void;
  close(): Promise<void>;
}

export interface ChannelSessionOptions {
  upstream: string;
  channel: MessageChannel;
  requestTimeoutMs: number;
  /** The upstream's concurrency limit (shared by all its sessions). */
  limiter: { acquire(): void; release(): void };
  logger: Logger;
  /** Called when the upstream answered (health), or its transport failed. */
  onUp(): void;
  onDown(err: GatehouseError): void;
}

interface Pending {
  upstreamId: number;
  clientId: JsonRpcId;
  method: string;
  resolve(res: JsonRpcResponse): void;
  reject(err: GatehouseError): void;
  onMessage: ((m: JsonRpcNotification | JsonRpcRequest) => void) | undefined;
  /** The client's own progress token, when the request carried one (the upstream sees ours). */
  progressToken: string | number | undefined;
}

const TOKEN_PREFIX = 'gh-p';

export class ChannelUpstreamSession implements UpstreamSession {
  readonly upstream: string;
  protocolVersion = '';
  initializeResult: Record<string, unknown> = {};
  readonly #opts: ChannelSessionOptions;
  readonly #byUpstreamId = new Map<number, Pending>();
  readonly #byClientId = new Map<string, Pending>();
  #nextId = 1;
  #closed = false;
  #serverHandler: ((m: JsonRpcMessage) => void) | undefined;

  constructor(opts: ChannelSessionOptions) {
    this.#opts = opts;
    this.upstream = opts.upstream;
    opts.channel.onMessage((m) => this.#onMessage(m));
    opts.channel.onClose((reason) => this.#onClose(reason));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The MCP handshake: initialize (with the client's version and capabilities), then initialized. */
  async initialize(client: ClientInfo, timeoutMs: number): Promise<void> {
    const res = await this.request(
      {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: client.protocolVersion,
          capabilities: client.capabilities,
          clientInfo: client.clientInfo,
        },
      },
      { timeoutMs, internal: true },
    );
    if ('error' in res) {
      throw Errors.upstreamProtocol(
        `upstream "${this.upstream}" refused initialize: ${res.error.message} (${res.error.code})`,
      );
    }
    const version = res.result.protocolVersion;
    if (typeof version !== 'string' || !isSupportedVersion(version)) {
      throw Errors.upstreamProtocol(
        `upstream "${this.upstream}" answered initialize with protocol version ${JSON.stringify(version)}, which the gateway does not speak`,
      );
    }
    this.protocolVersion = version;
    this.initializeResult = res.result;
    await this.notify({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  request(req: JsonRpcRequest, opts: RequestOptions = {}): Promise<JsonRpcResponse> {
    return this.requestIn('', req, opts);
  }

  /**
   * A request on behalf of one of the clients sharing this session (`scope` tells them apart), so that
   * two clients using the same request id never cancel each other's calls.
   */
  requestIn(scope: string, req: JsonRpcRequest, opts: RequestOptions = {}): Promise<JsonRpcResponse> {
    if (this.#closed)
      return Promise.reject(Errors.upstreamUnavailable(`upstream "${this.upstream}" session is closed`));
    const counted = !opts.internal;
    if (counted) this.#opts.limiter.acquire();
    const upstreamId = this.#nextId++;
    const params = req.params;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const token = meta?.progressToken;
    const hasToken = typeof token === 'string' || typeof token === 'number';
    // Progress tokens are rewritten like ids: several clients may share this session and reuse a token.
    const out: JsonRpcRequest = {
      jsonrpc: '2.0',
      id: upstreamId,
      method: req.method,
      ...(params === undefined
        ? {}
        : {
            params: hasToken
              ? { ...params, _meta: { ...meta, progressToken: `${TOKEN_PREFIX}${upstreamId}` } }
              : params,
          }),
    };
    const timeoutMs = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    return new Promise<JsonRpcResponse>((resolve, reject) => {
      const key = scope + idKey(req.id);
      const done = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.#byUpstreamId.delete(upstreamId);
        if (this.#byClientId.get(key) === pending) this.#byClientId.delete(key);
        if (counted) this.#opts.limiter.release();
      };
      const pending: Pending = {
        upstreamId,
        clientId: req.id,
        method: req.method,
        resolve: (res) => {
          done();
          res.id = req.id;
          resolve(res);
        },
        reject: (err) => {
          done();
          reject(err);
        },
        onMessage: opts.onMessage,
        progressToken: hasToken ? (token as string | number) : undefined,
      };
      const timer = setTimeout(() => {
        pending.reject(
          Errors.upstreamTimeout(
            `upstream "${this.upstream}" did not answer ${req.method} within ${timeoutMs} ms`,
          ),
        );
        void this.#cancelUpstream(upstreamId, `timed out after ${timeoutMs} ms`);
      }, timeoutMs);
      const onAbort = () => {
        const reason = opts.signal?.reason;
        pending.reject(
          reason instanceof GatehouseError
            ? reason
            : Errors.cancelled(`request cancelled (upstream "${this.upstream}")`),
        );
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#byUpstreamId.set(upstreamId, pending);
      this.#byClientId.set(key, pending);
      this.#opts.channel.send(out, opts.trace).catch((err: unknown) => {
        // A channel error that already names the upstream passes as it is.
        const e =
          err instanceof GatehouseError
            ? err
            : Errors.upstreamUnavailable(
                `upstream "${this.upstream}" could not be written to (${(err as Error).message})`,
              );
        if (e.code !== CREDENTIAL_ERROR_CODE) this.#opts.onDown(e); // not called: not down either
        pending.reject(e);
      });
    });
  }

  #onMessage(m: JsonRpcMessage): void {
    if (isResponse(m)) {
      const pending = typeof m.id === 'number' ? this.#byUpstreamId.get(m.id) : undefined;
      if (!pending) {
        this.#opts.logger.debug({ id: m.id }, 'dropped an upstream answer to no request in flight');
        return;
      }
      if (!('error' in m && m.error.code === ErrorCode.RequestCancelled)) this.#opts.onUp();
      pending.resolve(m);
      return;
    }
    if ('method' in m && m.method === 'notifications/progress') {
      const token = m.params?.progressToken;
      const pending =
        typeof token === 'string' && token.startsWith(TOKEN_PREFIX)
          ? this.#byUpstreamId.get(Number(token.slice(TOKEN_PREFIX.length)))
          : undefined;
      if (pending?.onMessage && pending.progressToken !== undefined) {
        pending.onMessage({
          ...m,
          params: { ...m.params, progressToken: pending.progressToken },
        } as JsonRpcNotification);
      }
      return; // progress for a request no longer in flight goes nowhere
    }
    // A server→client request (or a notification) while exactly one request is in flight belongs to it
    // (it travels on that request's stream); otherwise it goes to the session's stream.
    if (isRequest(m) && this.#byUpstreamId.size === 1) {
      const only = this.#byUpstreamId.values().next().value;
      if (only?.onMessage) {
        only.onMessage(m);
        return;
      }
    }
    this.#serverHandler?.(m);
  }

  #onClose(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = Errors.upstreamUnavailable(`upstream "${this.upstream}" ${reason}`);
    if (this.#byUpstreamId.size > 0) this.#opts.onDown(err);
    for (const p of [...this.#byUpstreamId.values()]) p.reject(err);
  }

  async #cancelUpstream(upstreamId: number, reason: string): Promise<void> {
    await this.notify({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: upstreamId, reason },
    }).catch(() => {});
  }

  async notify(n: JsonRpcNotification): Promise<void> {
    if (this.#closed) throw Errors.upstreamUnavailable(`upstream "${this.upstream}" session is closed`);
    await this.#opts.channel.send(n);
  }

  async respond(res: JsonRpcResponse): Promise<void> {
    if (this.#closed) throw Errors.upstreamUnavailable(`upstream "${this.upstream}" session is closed`);
    await this.#opts.channel.send(res);
  }

  cancel(id: JsonRpcId, reason?: string): Promise<void> {
    return this.cancelIn('', id, reason);
  }

  async cancelIn(scope: string, id: JsonRpcId, reason?: string): Promise<void> {
    const p = this.#byClientId.get(scope + idKey(id));
    if (!p) return;
    p.reject(Errors.cancelled(`request cancelled by the client (upstream "${this.upstream}")`));
    await this.#cancelUpstream(p.upstreamId, reason ?? 'cancelled by the client');
  }

  onServerMessage(handler: (m: JsonRpcMessage) => void): void {
    this.#serverHandler = handler;
  }

  async close(): Promise<void> {
    if (!this.#closed) this.#onClose('session closed');
    await this.#opts.channel.close();
  }
}
