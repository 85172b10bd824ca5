// Upstream over MCP Streamable HTTP (2025-03-26 and later): one undici Pool per upstream, one MCP
// session per downstream session, ids rewritten per session, SSE answers streamed and resumed.

import { Pool } from 'undici';
import { Errors, GatehouseError } from '../mcp/errors.ts';
import {
  ErrorCode,
  idKey,
  invalidMessageReason,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../mcp/jsonrpc.ts';
import { SseDecoder } from '../mcp/sse.ts';
import { isSupportedVersion } from '../mcp/versions.ts';
import { UpstreamBase } from './base.ts';
import {
  type Body,
  connectOptions,
  discard,
  type HttpAnswer,
  type HttpUpstreamOptions,
  isEventStream,
  parseMessage,
  RequestHeaders,
  tryParse,
} from './http-common.ts';
import type { ClientInfo, ConnectOptions, RequestOptions, Upstream, UpstreamSession } from './types.ts';

export interface StreamableHttpOptions extends HttpUpstreamOptions {
  /** Identity the gateway presents on its own sessions (health probes). */
  gatewayInfo: { name: string; version: string };
}

/** Content negotiation of every request to an upstream (Streamable HTTP requires both types). */
const NEGOTIATION_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};

export class StreamableHttpUpstream extends UpstreamBase implements Upstream {
  readonly options: StreamableHttpOptions;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #sessions = new Set<HttpUpstreamSession>();

  constructor(options: StreamableHttpOptions) {
    super(options.name, options.maxConcurrency, options.logger);
    this.options = options;
    const url = new URL(options.url);
    this.#path = url.pathname + url.search;
    this.#pool = new Pool(url.origin, {
      connect: connectOptions(options.connectTimeoutMs, options.tls),
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: 0, // SSE streams may idle for long; request deadlines are enforced per request
      keepAliveTimeout: 30_000,
    });
  }

  async connect(client: ClientInfo, opts: ConnectOptions = {}): Promise<UpstreamSession> {
    const session = new HttpUpstreamSession(
      this,
      new RequestHeaders(this.options.credentials?.forSession(opts)),
    );
    try {
      await session.initialize(client);
    } catch (err) {
      // Half-open (initialize answered, initialized refused, or a timeout after the upstream created the
      // session): end it upstream too, so that it does not linger there.
      await session.close();
      throw err;
    }
    this.#sessions.add(session);
    return session;
  }

  /** An error saying an upstream message was over the limit. */
  tooLarge(): GatehouseError {
    return Errors.upstreamProtocol(
      `upstream "${this.name}" sent a message larger than ${this.options.maxMessageBytes} bytes (limits.max_response_bytes)`,
    );
  }

  forget(session: HttpUpstreamSession): void {
    this.#sessions.delete(session);
  }

  async send(
    method: 'POST' | 'GET' | 'DELETE',
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<HttpAnswer> {
    try {
      const res = await this.#pool.request({
        path: this.#path,
        method,
        headers,
        body,
        signal,
      });
      return res as unknown as HttpAnswer;
    } catch (err) {
      throw this.translate(err, signal);
    }
  }

  /** Maps transport failures to the gateway's errors, naming this upstream. */
  translate(err: unknown, signal?: AbortSignal): GatehouseError {
    if (err instanceof GatehouseError) return err;
    if (signal?.aborted && signal.reason instanceof GatehouseError) return signal.reason;
    const e = err as { code?: string; message?: string };
    const why = [e.code, e.message].filter(Boolean).join(': ') || String(err);
    if (e.code === 'UND_ERR_HEADERS_TIMEOUT') {
      return Errors.upstreamTimeout(
        `upstream "${this.name}" did not answer within ${this.options.requestTimeoutMs} ms`,
      );
    }
    if (e.code === 'UND_ERR_CONNECT_TIMEOUT') {
      return Errors.upstreamUnavailable(
        `upstream "${this.name}" is unreachable: connect timed out after ${this.options.connectTimeoutMs} ms`,
      );
    }
    // A TLS upstream that closes the connection at once often wants a client certificate (mTLS).
    const hint =
      this.options.url.startsWith('https:') && e.code === 'UND_ERR_SOCKET'
        ? '; if it requires mTLS, set tls.cert and tls.key'
        : '';
    return Errors.upstreamUnavailable(
      `upstream "${this.name}" is unreachable or broke the connection (${why})${hint}`,
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#sessions].map((s) => s.close()));
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}

interface Pending {
  upstreamId: number;
  controller: AbortController;
}

class HttpUpstreamSession implements UpstreamSession {
  readonly upstream: string;
  protocolVersion = '';
  initializeResult: Record<string, unknown> = {};
  readonly #up: StreamableHttpUpstream;
  #sessionId: string | undefined;
  #cachedHeaders: Record<string, string> | undefined;
  /** The session's credential (upstream `auth`) over its headers, current at each request. */
  readonly #auth: RequestHeaders;
  #nextId = 1;
  #closed = false;
  readonly #pending = new Map<string, Pending>();
  #serverHandler: ((m: JsonRpcMessage) => void) | undefined;
  readonly #listenAbort = new AbortController();

  constructor(up: StreamableHttpUpstream, auth: RequestHeaders) {
    this.#up = up;
    this.upstream = up.name;
    this.#auth = auth;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The headers of a request: the session's, with the current credential (obtained first if need be). */
  #requestHeaders(): Record<string, string> | Promise<Record<string, string>> {
    return this.#auth.get(this.#headers());
  }

  /** The headers of every request of this session: built once per change, never per request. */
  #headers(): Record<string, string> {
    if (this.#cachedHeaders) return this.#cachedHeaders;
    const h: Record<string, string> = { ...this.#up.options.headers, ...NEGOTIATION_HEADERS };
    if (this.#sessionId !== undefined) h['mcp-session-id'] = this.#sessionId;
    if (this.protocolVersion) h['mcp-protocol-version'] = this.protocolVersion;
    this.#cachedHeaders = h;
    return h;
  }

  async initialize(client: ClientInfo): Promise<void> {
    const res = await this.request({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: client.protocolVersion,
        capabilities: client.capabilities,
        clientInfo: client.clientInfo,
      },
    });
    if ('error' in res) {
      throw Errors.upstreamProtocol(
        `upstream "${this.upstream}" refused initialize: ${res.error.message} (${res.error.code})`,
      );
    }
    const version = res.result.protocolVersion;
    if (typeof version !== 'string' || !isSupportedVersion(version)) {
      await this.close();
      throw Errors.upstreamProtocol(
        `upstream "${this.upstream}" answered initialize with protocol version ${JSON.stringify(version)}, which the gateway does not speak`,
      );
    }
    this.protocolVersion = version;
    this.#cachedHeaders = undefined;
    this.initializeResult = res.result;
    await this.notify({ jsonrpc: '2.0', method: 'notifications/initialized' });
    void this.#listen();
  }

  async request(req: JsonRpcRequest, opts: RequestOptions = {}): Promise<JsonRpcResponse> {
    if (this.#closed) throw Errors.upstreamUnavailable(`upstream "${this.upstream}" session is closed`);
    const up = this.#up;
    const counted = !opts.internal;
    if (counted) up.acquire();
    const upstreamId = this.#nextId++;
    const key = idKey(req.id);
    const controller = new AbortController();
    const timeoutMs = opts.timeoutMs ?? up.options.requestTimeoutMs;
    const timer = setTimeout(() => {
      controller.abort(
        Errors.upstreamTimeout(
          `upstream "${this.upstream}" did not answer ${req.method} within ${timeoutMs} ms`,
        ),
      );
      // The specification's lifecycle: a sender that gives up on a request tells the receiver.
      const params = { requestId: upstreamId, reason: `timed out after ${timeoutMs} ms` };
      void this.notify({ jsonrpc: '2.0', method: 'notifications/cancelled', params }).catch(() => {});
    }, timeoutMs);
    const onAbort = () => controller.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    this.#pending.set(key, { upstreamId, controller });
    try {
      let body: string;
      try {
        body = JSON.stringify({ jsonrpc: '2.0', id: upstreamId, method: req.method, params: req.params });
      } catch {
        throw Errors.invalidParams('Invalid params: nested too deeply to be forwarded');
      }
      const pending = this.#requestHeaders();
      const headers = pending instanceof Promise ? await pending : pending;
      const res = await up.send(
        'POST',
        opts.trace ? { ...headers, ...opts.trace } : headers,
        body,
        controller.signal,
      );
      if (req.method === 'initialize') {
        const sid = res.headers['mcp-session-id'];
        if (typeof sid === 'string') this.#sessionId = sid;
        this.#cachedHeaders = undefined;
      }
      const answer = await this.#answer(res, upstreamId, req, opts, controller.signal);
      // Answering initialize is not enough to be "up": the first real answer (or a probe's tools/list) is.
      if (
        req.method !== 'initialize' &&
        !('error' in answer && answer.error.code === ErrorCode.RequestCancelled)
      )
        up.markUp();
      answer.id = req.id;
      return answer;
    } catch (err) {
      // Only a failure of the upstream's transport says it is down — not the gateway's own aborts
      // (timeout, cancel, session end) nor an answer it did give.
      if (!(err instanceof GatehouseError) && !controller.signal.aborted) up.markDown(up.translate(err));
      throw up.translate(err, controller.signal);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (this.#pending.get(key)?.upstreamId === upstreamId) this.#pending.delete(key);
      if (counted) up.release();
    }
  }

  async #answer(
    res: HttpAnswer,
    upstreamId: number,
    req: JsonRpcRequest,
    opts: RequestOptions,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const type = String(res.headers['content-type'] ?? '');
    if (res.statusCode === 200 && type.startsWith('text/event-stream')) {
      opts.onStream?.();
      return this.#readStream(res.body, upstreamId, req, opts, signal);
    }
    if (res.statusCode === 200 && type.startsWith('application/json')) {
      const msg = await this.#readJson(res.body, res.headers['content-length']);
      if (Array.isArray(msg) || !isResponse(msg) || msg.id !== upstreamId) {
        throw Errors.upstreamProtocol(
          `upstream "${this.upstream}" answered ${req.method} with a message that is not its response`,
        );
      }
      return msg;
    }
    if (res.statusCode === 404 && this.#sessionId !== undefined) {
      await res.body.dump?.();
      this.#markClosed();
      throw Errors.upstreamUnavailable(
        `upstream "${this.upstream}" no longer knows this session (it restarted or expired it); the next request opens a new one`,
      );
    }
    // Any other answer: a JSON-RPC error body is passed through, anything else named by its status.
    const text = await this.#readText(res.body, res.headers['content-length']).catch(() => '');
    const parsed = tryParse(text);
    if (parsed !== undefined && invalidMessageReason(parsed) === undefined) {
      const msg = parsed as JsonRpcMessage;
      if (isResponse(msg) && 'error' in msg) return msg;
    }
    const refused =
      res.statusCode === 401 || res.statusCode === 403
        ? ": it refused the gateway's credential (see the upstream's auth and headers)"
        : '';
    const detail = `upstream "${this.upstream}" answered ${req.method} with HTTP ${res.statusCode}${type ? ` (${type.split(';')[0]})` : ''}${refused}`;
    throw res.statusCode >= 500 ? Errors.upstreamUnavailable(detail) : Errors.upstreamProtocol(detail);
  }

  /**
   * Reads an SSE answer: interim messages go to opts.onMessage, the response settles the promise. The
   * rest of the stream is drained in the background (so the connection can be reused), bounded in time.
   * A stream the server ends without answering is resumed with Last-Event-ID (2025-11-25 polling).
   */
  #readStream(
    first: Body,
    upstreamId: number,
    req: JsonRpcRequest,
    opts: RequestOptions,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const max = this.#up.options.maxMessageBytes;
    return new Promise<JsonRpcResponse>((resolve, reject) => {
      let settled = false;
      let body = first;
      const settle = (err: unknown, answer?: JsonRpcResponse) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (answer) {
          resolve(answer);
          const drain = setTimeout(() => discard(body), 5_000);
          drain.unref();
        } else {
          discard(body);
          reject(err);
        }
      };
      const onAbort = () => settle(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const decoder = new SseDecoder((ev) => {
        if (ev.data === '' || settled) return;
        const msg = parseMessage(ev.data, this.upstream);
        if (isResponse(msg)) {
          if (msg.id === upstreamId) settle(undefined, msg);
        } else {
          opts.onMessage?.(msg);
        }
      }, max);
      const run = async () => {
        for (;;) {
          body.setEncoding('utf8');
          try {
            for await (const chunk of body) decoder.push(chunk as string);
          } catch (err) {
            if (settled) return;
            if (err instanceof GatehouseError) throw err;
            if (err instanceof RangeError) throw this.#up.tooLarge();
            // a broken stream is resumable when the server gave event ids (below)
          }
          if (settled) return;
          const lastEventId = decoder.lastEventId;
          if (lastEventId === undefined) {
            throw Errors.upstreamUnavailable(
              `upstream "${this.upstream}" closed the stream before answering ${req.method}`,
            );
          }
          opts.onPause?.();
          await delay(Math.min(decoder.retry ?? 1000, 30_000), signal);
          const res = await this.#openGet(lastEventId, signal);
          if (res.statusCode !== 200 || !isEventStream(res)) {
            await res.body.dump?.();
            throw Errors.upstreamUnavailable(
              `upstream "${this.upstream}" could not resume its stream (HTTP ${res.statusCode})`,
            );
          }
          decoder.reset(); // what the broken connection left half-sent must not prefix the resumed stream
          body = res.body;
        }
      };
      run().catch((err) => settle(err));
    });
  }

  async #readText(body: Body, contentLength: string | string[] | undefined): Promise<string> {
    const max = this.#up.options.maxMessageBytes;
    if (typeof contentLength === 'string' && Number(contentLength) > max) {
      discard(body);
      throw this.#up.tooLarge();
    }
    // A declared length within the limit: undici's own reader is much cheaper than async iteration.
    if (typeof contentLength === 'string' && contentLength !== '') return body.text();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > max) {
        discard(body);
        throw this.#up.tooLarge();
      }
      chunks.push(b);
    }
    return chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
  }

  async #readJson(body: Body, contentLength: string | string[] | undefined): Promise<JsonRpcMessage> {
    return parseMessage(await this.#readText(body, contentLength), this.upstream);
  }

  async #post(msg: JsonRpcNotification | JsonRpcResponse, what: string): Promise<void> {
    if (this.#closed) throw Errors.upstreamUnavailable(`upstream "${this.upstream}" session is closed`);
    const signal = AbortSignal.timeout(this.#up.options.requestTimeoutMs);
    const res = await this.#up.send('POST', await this.#requestHeaders(), JSON.stringify(msg), signal);
    await res.body.dump?.();
    if (res.statusCode === 404 && this.#sessionId !== undefined) this.#markClosed();
    if (res.statusCode !== 202 && res.statusCode !== 200) {
      throw Errors.upstreamProtocol(
        `upstream "${this.upstream}" refused ${what} with HTTP ${res.statusCode}`,
      );
    }
  }

  notify(n: JsonRpcNotification): Promise<void> {
    return this.#post(n, n.method);
  }

  respond(res: JsonRpcResponse): Promise<void> {
    return this.#post(res, 'a response to its request');
  }

  async cancel(id: JsonRpcId, reason?: string): Promise<void> {
    const p = this.#pending.get(idKey(id));
    if (!p) return; // already answered: nothing to cancel
    const params: Record<string, unknown> = { requestId: p.upstreamId };
    if (reason !== undefined) params.reason = reason;
    p.controller.abort(Errors.cancelled(`request cancelled by the client (upstream "${this.upstream}")`));
    await this.notify({ jsonrpc: '2.0', method: 'notifications/cancelled', params }).catch(() => {});
  }

  /** A GET stream of this session, resuming after `lastEventId` when given. */
  async #openGet(lastEventId: string | undefined, signal: AbortSignal): Promise<HttpAnswer> {
    const headers: Record<string, string> = {
      ...(await this.#requestHeaders()),
      accept: 'text/event-stream',
    };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    return this.#up.send('GET', headers, undefined, signal);
  }

  onServerMessage(handler: (m: JsonRpcMessage) => void): void {
    this.#serverHandler = handler;
  }

  /** The GET stream: messages outside any request. Reconnects with backoff while the session lives. */
  async #listen(): Promise<void> {
    const signal = this.#listenAbort.signal;
    let failures = 0;
    let lastEventId: string | undefined;
    while (!this.#closed) {
      try {
        const res = await this.#openGet(lastEventId, signal);
        if (res.statusCode === 405) {
          await res.body.dump?.();
          return; // the server offers no GET stream
        }
        if (res.statusCode === 404) {
          await res.body.dump?.();
          this.#markClosed();
          return;
        }
        if (res.statusCode !== 200) {
          await res.body.dump?.();
          throw new Error(`HTTP ${res.statusCode}`);
        }
        failures = 0;
        const decoder = new SseDecoder((ev) => {
          if (ev.data === '') return;
          try {
            this.#serverHandler?.(parseMessage(ev.data, this.upstream));
          } catch (err) {
            this.#up.options.logger.warn(
              { err: (err as Error).message },
              'dropped a malformed message from the upstream GET stream',
            );
          }
        }, this.#up.options.maxMessageBytes);
        res.body.setEncoding('utf8');
        for await (const chunk of res.body) decoder.push(chunk as string);
        lastEventId = decoder.lastEventId ?? lastEventId;
      } catch (err) {
        if (this.#closed || signal.aborted) return;
        failures++;
        this.#up.options.logger.debug({ err: (err as Error).message }, 'upstream GET stream failed');
      }
      await delay(Math.min(30_000, 250 * 2 ** Math.min(failures, 7)), signal).catch(() => {});
    }
  }

  #markClosed(): void {
    this.#closed = true;
    this.#listenAbort.abort();
    this.#up.forget(this);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#markClosed();
    for (const p of this.#pending.values())
      p.controller.abort(Errors.upstreamUnavailable(`upstream "${this.upstream}" session closed`));
    if (this.#sessionId === undefined) return;
    try {
      const headers = await this.#requestHeaders();
      const res = await this.#up.send('DELETE', headers, undefined, AbortSignal.timeout(2_000));
      await res.body.dump?.();
    } catch {
      // the upstream may already be gone; its session then expires on its own
    }
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
