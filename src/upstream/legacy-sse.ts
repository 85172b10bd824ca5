// Upstream `sse`: an MCP server speaking the 2024-11-05 HTTP+SSE transport. The client holds a GET
// stream open; the server's first event names the endpoint the client POSTs its messages to, and every
// server message comes back on the stream. One stream (and MCP session) per downstream session.

import { Pool } from 'undici';
import { Errors, GatehouseError } from '../mcp/errors.ts';
import { invalidMessageReason, type JsonRpcMessage, serialize } from '../mcp/jsonrpc.ts';
import { SseDecoder, type SseEvent } from '../mcp/sse.ts';
import type { Logger } from '../telemetry/logger.ts';
import { UpstreamBase } from './base.ts';
import { ChannelUpstreamSession, type MessageChannel } from './channel-session.ts';
import {
  type Body,
  connectOptions,
  discard,
  type HttpAnswer,
  type HttpUpstreamOptions,
  RequestHeaders,
  tryParse,
} from './http-common.ts';
import {
  type ClientInfo,
  type ConnectOptions,
  CREDENTIAL_ERROR_CODE,
  type CredentialSource,
  type Upstream,
  type UpstreamSession,
} from './types.ts';

/** `url` is the SSE endpoint (GET), e.g. http://host:3001/sse; `connectTimeoutMs` also bounds the wait for
 * the endpoint event. */
export type LegacySseOptions = HttpUpstreamOptions;

export interface SseChannelOptions {
  upstream: string;
  /** The SSE endpoint; the endpoint event must name a URI on its origin. */
  url: URL;
  /** A dispatcher for `url`'s origin (the upstream's pool): the stream and the POSTs share it. */
  pool: Pool;
  headers: Record<string, string>;
  /** The session's credential (upstream `auth`): on the stream's GET and on every POST. */
  credentials?: CredentialSource | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxMessageBytes: number;
  logger: Logger;
}

/**
 * One 2024-11-05 SSE connection as a message channel: open() holds the GET stream and waits for the
 * endpoint event; send() POSTs one message there; the stream's `message` events are the upstream's.
 */
export class SseChannel implements MessageChannel {
  readonly #opts: SseChannelOptions;
  readonly #getHeaders: Record<string, string>;
  readonly #postHeaders: Record<string, string>;
  readonly #getAuth: RequestHeaders;
  readonly #postAuth: RequestHeaders;
  /** Ends the GET stream: on close(), on a refused endpoint, on the connect timeout. */
  readonly #abort = new AbortController();
  readonly #endpoint = Promise.withResolvers<URL>();
  #postPath: string | undefined;
  #body: Body | undefined;
  #onMessage: ((m: JsonRpcMessage) => void) | undefined;
  #onClose: ((reason: string) => void) | undefined;
  #closedReason: string | undefined;
  /** Why the channel ended, as the error a pending open() rejects with. */
  #error: GatehouseError | undefined;
  readonly #ended = Promise.withResolvers<string>();

  constructor(opts: SseChannelOptions) {
    this.#opts = opts;
    this.#getHeaders = { ...opts.headers, accept: 'text/event-stream' };
    this.#postHeaders = { ...opts.headers, 'content-type': 'application/json' };
    this.#getAuth = new RequestHeaders(opts.credentials);
    this.#postAuth = new RequestHeaders(opts.credentials);
    this.#endpoint.promise.catch(() => {}); // open() reports it; a channel never opened must not leak it
  }

  /** Where messages are POSTed, once the endpoint event came. */
  get endpoint(): URL | undefined {
    return this.#postPath === undefined ? undefined : new URL(this.#postPath, this.#opts.url);
  }

  /** Resolves with the reason when the channel has ended, whoever ended it. */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  /** Opens the GET stream and waits for the endpoint event, all within connectTimeoutMs. */
  async open(): Promise<void> {
    const { upstream, url, connectTimeoutMs } = this.#opts;
    const signal = this.#abort.signal;
    const timer = setTimeout(() => {
      this.#fail(
        `did not send its endpoint event within ${connectTimeoutMs} ms (connect_timeout)`,
        Errors.upstreamUnavailable(
          `upstream "${upstream}" did not send its endpoint event within ${connectTimeoutMs} ms (connect_timeout); is ${url.origin}${url.pathname} the SSE endpoint of a 2024-11-05 MCP server?`,
        ),
      );
    }, connectTimeoutMs);
    try {
      let res: HttpAnswer;
      try {
        res = (await this.#opts.pool.request({
          path: url.pathname + url.search,
          method: 'GET',
          headers: await this.#getAuth.get(this.#getHeaders),
          signal,
          headersTimeout: connectTimeoutMs,
          bodyTimeout: 0, // the stream idles between messages for as long as the session lives
        })) as unknown as HttpAnswer;
      } catch (err) {
        const e = this.#failure(err, signal);
        this.#end('could not be connected to', e);
        throw e;
      }
      const type = String(res.headers['content-type'] ?? '');
      if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
        discard(res.body);
        const detail = `upstream "${upstream}" answered GET ${url.origin}${url.pathname} with HTTP ${res.statusCode}${type ? ` (${type.split(';')[0]})` : ''}, not an SSE stream; a server speaking Streamable HTTP needs type streamable-http`;
        const e =
          res.statusCode >= 500 ? Errors.upstreamUnavailable(detail) : Errors.upstreamProtocol(detail);
        this.#end(`refused the SSE stream (HTTP ${res.statusCode})`, e);
        throw e;
      }
      if (this.#error !== undefined) {
        discard(res.body); // timed out or closed while the headers were on their way
        throw this.#error;
      }
      this.#body = res.body;
      void this.#read(res.body);
      const endpoint = await this.#endpoint.promise;
      this.#postPath = endpoint.pathname + endpoint.search;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The error that ended open(): ours when we aborted (timeout, close), else the transport's, named. */
  #failure(err: unknown, signal: AbortSignal): GatehouseError {
    if (signal.aborted && signal.reason instanceof GatehouseError) return signal.reason;
    return transportError(this.#opts.upstream, err, this.#opts.connectTimeoutMs);
  }

  async #read(body: Body): Promise<void> {
    const max = this.#opts.maxMessageBytes;
    const decoder = new SseDecoder((ev) => this.#event(ev), max);
    body.setEncoding('utf8');
    try {
      for await (const chunk of body) decoder.push(chunk as string);
      this.#end('closed its SSE stream');
    } catch (err) {
      if (this.#closedReason !== undefined) return; // we ended it
      if (err instanceof RangeError) {
        this.#opts.logger.warn({ limit: max }, 'upstream sent an SSE event over limits.max_response_bytes');
        this.#fail(
          `sent a message larger than ${max} bytes (limits.max_response_bytes)`,
          Errors.upstreamProtocol(
            `upstream "${this.#opts.upstream}" sent a message larger than ${max} bytes (limits.max_response_bytes)`,
          ),
        );
        return;
      }
      const e = err as { code?: string; message?: string };
      this.#end(`broke its SSE stream (${[e.code, e.message].filter(Boolean).join(': ') || String(err)})`);
    }
  }

  #event(ev: SseEvent): void {
    if (this.#closedReason !== undefined) return;
    if (ev.event === 'endpoint') {
      this.#endpointEvent(ev.data);
      return;
    }
    if (ev.event !== 'message' || ev.data === '') return; // other event types carry nothing for MCP
    const v = tryParse(ev.data);
    const reason = v === undefined ? 'malformed JSON' : invalidMessageReason(v);
    if (reason !== undefined) {
      this.#opts.logger.warn({ reason }, 'dropped an invalid message from the upstream SSE stream');
      return;
    }
    this.#onMessage?.(v as JsonRpcMessage);
  }

  #endpointEvent(data: string): void {
    const { upstream, url } = this.#opts;
    if (this.#postPath !== undefined) {
      this.#opts.logger.warn('upstream sent a second endpoint event; kept the first');
      return;
    }
    let endpoint: URL;
    try {
      endpoint = new URL(data.trim(), url);
    } catch {
      this.#fail(
        'sent an endpoint event that is not a URI',
        Errors.upstreamProtocol(
          `upstream "${upstream}" sent an endpoint event that is not a URI: ${JSON.stringify(data.slice(0, 200))}`,
        ),
      );
      return;
    }
    // The endpoint receives every message and the static headers (credentials): it must be the
    // upstream we were configured with, not wherever the stream points.
    if (endpoint.origin !== url.origin) {
      this.#fail(
        `named a message endpoint on another origin (${endpoint.origin})`,
        Errors.upstreamProtocol(
          `upstream "${upstream}" named a message endpoint on another origin (${endpoint.origin}) than its SSE URL (${url.origin}); refused: messages are only POSTed to the configured origin`,
        ),
      );
      return;
    }
    this.#endpoint.resolve(endpoint);
  }

  async send(m: JsonRpcMessage, trace?: Readonly<Record<string, string>>): Promise<void> {
    const { upstream, pool, requestTimeoutMs } = this.#opts;
    if (this.#closedReason !== undefined)
      throw Errors.upstreamUnavailable(`upstream "${upstream}" ${this.#closedReason}`);
    const path = this.#postPath;
    if (path === undefined)
      throw Errors.upstreamUnavailable(`upstream "${upstream}" has not sent its endpoint event yet`);
    const text = serialize(m);
    if (text === undefined) return;
    const auth = this.#postAuth.get(this.#postHeaders);
    const own = auth instanceof Promise ? await auth : auth;
    const headers = trace ? { ...own, ...trace } : own;
    const signal = AbortSignal.timeout(requestTimeoutMs);
    let res: HttpAnswer;
    try {
      res = (await pool.request({
        path,
        method: 'POST',
        headers,
        body: text,
        signal,
      })) as unknown as HttpAnswer;
    } catch (err) {
      if (signal.aborted || (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT') {
        throw Errors.upstreamTimeout(
          `upstream "${upstream}" did not accept a message POSTed to its message endpoint within ${requestTimeoutMs} ms`,
        );
      }
      throw transportError(upstream, err, this.#opts.connectTimeoutMs);
    }
    await res.body.dump?.().catch(() => {});
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    if (res.statusCode === 404) {
      // The SSE server forgot the session its stream belongs to (restarted, expired): the session ends.
      this.#fail('no longer knows this session (HTTP 404 to a POSTed message)');
    }
    const detail = `upstream "${upstream}" refused a message POSTed to its message endpoint with HTTP ${res.statusCode}`;
    throw res.statusCode >= 500 ? Errors.upstreamUnavailable(detail) : Errors.upstreamProtocol(detail);
  }

  onMessage(handler: (m: JsonRpcMessage) => void): void {
    this.#onMessage = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.#onClose = handler;
    if (this.#closedReason !== undefined) handler(this.#closedReason);
  }

  /** Ends the channel and its stream; `err` is what a pending open() rejects with. */
  #fail(reason: string, err?: GatehouseError): void {
    this.#end(reason, err);
    this.#abort.abort(err ?? Errors.upstreamUnavailable(`upstream "${this.#opts.upstream}" ${reason}`));
    if (this.#body) discard(this.#body);
  }

  #end(reason: string, err?: GatehouseError): void {
    if (this.#closedReason !== undefined) return;
    this.#closedReason = reason;
    if (this.#postPath === undefined) {
      // open() is still waiting: it reports the failure itself.
      this.#error =
        err ??
        Errors.upstreamUnavailable(
          `upstream "${this.#opts.upstream}" ${reason} before sending its endpoint event`,
        );
      this.#endpoint.reject(this.#error);
    } else if (reason !== 'session closed') {
      this.#opts.logger.info({ reason }, 'upstream SSE stream ended');
    }
    this.#ended.resolve(reason);
    this.#onClose?.(reason);
  }

  /** Ends the GET stream: the 2024-11-05 transport's way of ending a session. */
  async close(): Promise<void> {
    this.#fail('session closed');
  }
}

export class LegacySseUpstream extends UpstreamBase implements Upstream {
  readonly options: LegacySseOptions;
  readonly #url: URL;
  readonly #pool: Pool;
  readonly #channels = new Set<SseChannel>();
  #closing = false;

  constructor(options: LegacySseOptions) {
    super(options.name, options.maxConcurrency, options.logger);
    this.options = options;
    this.#url = new URL(options.url);
    this.#pool = new Pool(this.#url.origin, {
      connect: connectOptions(options.connectTimeoutMs, options.tls),
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /** Open SSE streams (one per live session), for tests and /readyz. */
  get connectionCount(): number {
    return this.#channels.size;
  }

  async connect(client: ClientInfo, opts: ConnectOptions = {}): Promise<UpstreamSession> {
    if (this.#closing) throw Errors.shuttingDown(`upstream "${this.name}" is shutting down`);
    const o = this.options;
    const channel = new SseChannel({
      upstream: this.name,
      url: this.#url,
      pool: this.#pool,
      headers: o.headers,
      credentials: o.credentials?.forSession(opts),
      connectTimeoutMs: o.connectTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      maxMessageBytes: o.maxMessageBytes,
      logger: o.logger,
    });
    this.#channels.add(channel);
    void channel.ended.then(() => this.#channels.delete(channel));
    const session = new ChannelUpstreamSession({
      upstream: this.name,
      channel,
      requestTimeoutMs: o.requestTimeoutMs,
      limiter: this,
      logger: o.logger,
      onUp: () => this.markUp(),
      onDown: (err) => this.markDown(err),
    });
    try {
      await channel.open();
      await session.initialize(client, o.requestTimeoutMs);
    } catch (err) {
      await session.close();
      // No credential for it says nothing of the upstream's health: it was not even called.
      if (!this.#closing && (err as { code?: unknown }).code !== CREDENTIAL_ERROR_CODE) this.markDown(err);
      throw err;
    }
    return session;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#channels].map((c) => c.close()));
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}

/** Maps a transport failure to the gateway's error, naming the upstream. */
function transportError(upstream: string, err: unknown, connectTimeoutMs: number): GatehouseError {
  if (err instanceof GatehouseError) return err;
  const e = err as { code?: string; message?: string };
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'UND_ERR_HEADERS_TIMEOUT') {
    return Errors.upstreamUnavailable(
      `upstream "${upstream}" is unreachable: no answer within ${connectTimeoutMs} ms (connect_timeout)`,
    );
  }
  const why = [e.code, e.message].filter(Boolean).join(': ') || String(err);
  const hint =
    e.code === 'UND_ERR_SOCKET' ? '; if it uses TLS and requires mTLS, set tls.cert and tls.key' : '';
  return Errors.upstreamUnavailable(
    `upstream "${upstream}" is unreachable or broke the connection (${why})${hint}`,
  );
}
