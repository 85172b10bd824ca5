// A REST API as an MCP upstream (`type: rest`): the gateway is the MCP server. Sessions answer initialize,
// ping and tools/list locally from the compiled tools; tools/call validates the arguments, builds the HTTP
// request (only ever towards the base URL: path arguments are encoded whole, redirects followed only within
// the base URL) and maps the answer to a tool result. An API that answers with a failure (status ≥ 400)
// gives an `isError` result; one that cannot be reached or times out gives the JSON-RPC error of an
// unreachable upstream, naming it.

import { Pool } from 'undici';
import { Errors, GatehouseError } from '../../mcp/errors.ts';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  withUpstreamCode,
} from '../../mcp/jsonrpc.ts';
import { negotiateVersion } from '../../mcp/versions.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { UpstreamBase } from '../base.ts';
import type { Body } from '../http-common.ts';
import { connectOptions } from '../http-common.ts';
import type {
  ClientInfo,
  ConnectOptions,
  CredentialProvider,
  RequestOptions,
  Upstream,
  UpstreamSession,
} from '../types.ts';
import { buildRequest, type CompiledRestTool, RestToolError } from './tools.ts';

export interface RestUpstreamOptions {
  name: string;
  baseUrl: string;
  /** Static headers (secrets resolved), never logged. */
  headers: Record<string, string>;
  /** Static query parameters added to every request (secrets resolved), never logged. */
  query: Record<string, string>;
  tools: readonly CompiledRestTool[];
  /** The ACL of each tool that has one, by tool name (read by the routes serving this upstream). */
  toolAcls: readonly [
    string,
    { allow?: readonly string[]; deny?: readonly string[]; scopes?: readonly string[] },
  ][];
  credentials?: CredentialProvider | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxConcurrency: number;
  maxResponseBytes: number;
  tls?: { ca?: string; cert?: string; key?: string; servername?: string };
  gatewayInfo: { name: string; version: string };
  logger: Logger;
}

const MAX_REDIRECTS = 3;
/** The API's HTTP status behind each tool result (for audit and metrics). */
const statusOf = new WeakMap<object, number>();
const ERROR_EXCERPT = 2_000;

export class RestUpstream extends UpstreamBase implements Upstream {
  readonly options: RestUpstreamOptions;
  readonly #pool: Pool;
  readonly #origin: string;
  /** The base URL's path without a trailing slash: every request stays under it. */
  readonly #basePath: string;
  readonly #shownBase: string;
  readonly #query: string;
  /** The static query's names: no argument may set them too. */
  readonly #queryNames: ReadonlySet<string>;
  readonly #byName: ReadonlyMap<string, CompiledRestTool>;
  readonly #list: Record<string, unknown>;

  constructor(options: RestUpstreamOptions) {
    super(options.name, options.maxConcurrency, options.logger);
    this.options = options;
    const base = new URL(options.baseUrl);
    this.#origin = base.origin;
    this.#basePath = base.pathname.replace(/\/+$/, '');
    // Shown to clients (messages, resource URIs): never the base URL's user:password or its query.
    this.#shownBase = `${this.#origin}${this.#basePath}`;
    this.#query = new URLSearchParams(options.query).toString();
    this.#queryNames = new Set(Object.keys(options.query));
    this.#byName = new Map(options.tools.map((t) => [t.tool.name as string, t]));
    this.#list = { tools: options.tools.map((t) => t.tool) };
    this.#pool = new Pool(this.#origin, {
      connect: connectOptions(options.connectTimeoutMs, options.tls),
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  async connect(client: ClientInfo, opts: ConnectOptions = {}): Promise<UpstreamSession> {
    return new RestSession(this, client, this.options.credentials?.forSession(opts));
  }

  get list(): Record<string, unknown> {
    return this.#list;
  }

  tool(name: string): CompiledRestTool | undefined {
    return this.#byName.get(name);
  }

  /** One tool call, as a tool result (API failures) or a thrown GatehouseError (unreachable, too large). */
  async call(
    t: CompiledRestTool,
    args: Record<string, unknown>,
    credentials: Readonly<Record<string, string>> | undefined,
    signal: AbortSignal,
    /** W3C trace context headers of the call (they win over a tool argument of the same name). */
    trace?: Readonly<Record<string, string>>,
  ): Promise<Record<string, unknown>> {
    const invalid = t.check(args);
    if (invalid) return toolError(`Invalid arguments for tool ${t.tool.name as string}: ${invalid}`);
    let built: ReturnType<typeof buildRequest>;
    try {
      built = buildRequest(t, args, this.#basePath, this.#queryNames);
    } catch (err) {
      if (err instanceof RestToolError)
        return toolError(`Invalid arguments for tool ${t.tool.name as string}: ${err.message}`);
      throw err;
    }
    let path = this.#query
      ? `${built.path}${built.path.includes('?') ? '&' : '?'}${this.#query}`
      : built.path;
    const headers: Record<string, string> = {
      ...built.headers,
      ...this.options.headers,
      ...credentials,
      ...trace,
      accept: 'application/json, */*;q=0.8',
    };
    let method = built.method;
    let body = built.body;
    for (let hop = 0; ; hop++) {
      const res = await this.#send(method, path, headers, body, signal);
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        discardBody(res.body);
        const location = String(res.headers.location ?? '');
        const next = location ? new URL(location, `${this.#origin}${path}`) : undefined;
        // Followed only inside the base URL, a few times; anything else is reported, not followed.
        if (
          !next ||
          next.origin !== this.#origin ||
          !this.#underBase(next.pathname) ||
          hop >= MAX_REDIRECTS
        ) {
          return toolError(
            `HTTP ${res.statusCode} from ${this.name}: redirect to ${location || '(no Location)'} not followed (only redirects within ${this.#shownBase} are)`,
          );
        }
        if (
          res.statusCode === 303 ||
          ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')
        ) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
        }
        path = next.pathname + next.search;
        continue;
      }
      const result = await this.#result(t, res.statusCode, res.headers, res.body);
      statusOf.set(result, res.statusCode);
      return result;
    }
  }

  #underBase(pathname: string): boolean {
    return this.#basePath === '' || pathname === this.#basePath || pathname.startsWith(`${this.#basePath}/`);
  }

  async #send(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; body: Body }> {
    try {
      const res = await this.#pool.request({ method: method as 'GET', path, headers, body, signal });
      this.markUp();
      return res as unknown as {
        statusCode: number;
        headers: Record<string, string | string[] | undefined>;
        body: Body;
      };
    } catch (err) {
      if (signal.aborted) {
        if (signal.reason instanceof GatehouseError) throw signal.reason;
        throw Errors.upstreamTimeout(`upstream "${this.name}" did not answer in time`);
      }
      const code = (err as { code?: string }).code;
      // A request undici refuses to send (a header value it cannot carry): this call's fault, not the API's
      // — the upstream is not marked down for it.
      if (code === 'UND_ERR_INVALID_ARG')
        throw Errors.upstreamProtocol(
          `upstream "${this.name}" was not called: the request cannot be sent (${err instanceof Error ? err.message : String(err)})`,
        );
      const msg = `upstream "${this.name}" cannot be reached (${code ?? (err instanceof Error ? err.message : String(err))})`;
      this.markDown(msg);
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
        throw Errors.upstreamTimeout(`upstream "${this.name}" did not answer in time`);
      throw Errors.upstreamUnavailable(msg);
    }
  }

  async #result(
    t: CompiledRestTool,
    status: number,
    headers: Record<string, string | string[] | undefined>,
    body: Body,
  ): Promise<Record<string, unknown>> {
    const bytes = await readLimited(body, this.options.maxResponseBytes, this.name);
    const type = String(headers['content-type'] ?? '').toLowerCase();
    const isJson = /^application\/([\w.+-]+\+)?json\b/.test(type);
    const isText =
      isJson ||
      type.startsWith('text/') ||
      /xml|yaml|javascript|x-www-form-urlencoded/.test(type) ||
      type === '';
    if (status >= 400) {
      const excerpt = isText
        ? bytes.toString('utf8').slice(0, ERROR_EXCERPT)
        : `(${bytes.length} bytes of ${type})`;
      return toolError(`HTTP ${status} from ${this.name}: ${excerpt}`);
    }
    // A tool with an output schema must give structured content (MCP): an answer that cannot be one is an
    // error result carrying what the API said, never a result the client would reject.
    const unstructured = (what: string, text: string) => ({
      content: [
        {
          type: 'text',
          text: `HTTP ${status} from ${this.name}: ${what}, so it cannot match the tool's output schema`,
        },
        ...(text ? [{ type: 'text', text }] : []),
      ],
      isError: true,
    });
    if (bytes.length === 0) {
      if (t.hasOutputSchema) return unstructured('the answer is empty', '');
      return { content: [{ type: 'text', text: `HTTP ${status} (no content)` }] };
    }
    if (!isJson && t.hasOutputSchema)
      return unstructured(
        `the answer is ${type || 'untyped'}, not JSON`,
        isText ? bytes.toString('utf8').slice(0, ERROR_EXCERPT) : '',
      );
    if (isJson) {
      const text = bytes.toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return toolError(
          `HTTP ${status} from ${this.name}: the body is not valid JSON although labelled ${type}`,
        );
      }
      const out: Record<string, unknown> = { content: [{ type: 'text', text }] };
      if (t.hasOutputSchema) {
        // MCP clients reject structured content that does not match the output schema: an API answering
        // otherwise than its documentation says gives an error result that still carries the answer.
        const structured = t.wrapsResult ? { result: parsed } : parsed;
        const mismatch = t.checkOutput(structured);
        if (mismatch)
          return {
            content: [
              {
                type: 'text',
                text: `HTTP ${status} from ${this.name}: the answer does not match the tool's output schema (${mismatch})`,
              },
              { type: 'text', text },
            ],
            isError: true,
          };
        out.structuredContent = structured;
      }
      return out;
    }
    if (isText) return { content: [{ type: 'text', text: bytes.toString('utf8') }] };
    const mimeType = type.split(';')[0]!.trim() || 'application/octet-stream';
    if (mimeType.startsWith('image/'))
      return { content: [{ type: 'image', data: bytes.toString('base64'), mimeType }] };
    if (mimeType.startsWith('audio/'))
      return { content: [{ type: 'audio', data: bytes.toString('base64'), mimeType }] };
    return {
      content: [
        {
          type: 'resource',
          resource: {
            uri: `${this.#shownBase}#${t.tool.name as string}`,
            mimeType,
            blob: bytes.toString('base64'),
          },
        },
      ],
    };
  }

  async close(): Promise<void> {
    await this.#pool.close().catch(() => {});
  }
}

class RestSession implements UpstreamSession {
  readonly upstream: string;
  readonly protocolVersion: string;
  readonly initializeResult: Record<string, unknown>;
  readonly closed = false;
  readonly #up: RestUpstream;
  readonly #credentials: ReturnType<CredentialProvider['forSession']> | undefined;
  readonly #inFlight = new Map<string, AbortController>();

  constructor(
    up: RestUpstream,
    client: ClientInfo,
    credentials: ReturnType<CredentialProvider['forSession']> | undefined,
  ) {
    this.#up = up;
    this.#credentials = credentials;
    this.upstream = up.name;
    this.protocolVersion = negotiateVersion(client.protocolVersion);
    this.initializeResult = {
      protocolVersion: this.protocolVersion,
      capabilities: { tools: { listChanged: false } },
      serverInfo: {
        name: up.name,
        version: up.options.gatewayInfo.version,
        title: `${up.name} (REST API via Gatehouse)`,
      },
    };
  }

  async request(req: JsonRpcRequest, opts: RequestOptions = {}): Promise<JsonRpcResponse> {
    switch (req.method) {
      case 'ping':
        return { jsonrpc: '2.0', id: req.id, result: {} };
      case 'tools/list':
        return { jsonrpc: '2.0', id: req.id, result: this.#up.list };
      case 'tools/call':
        return this.#call(req, opts);
      default:
        return errorResponse(
          req.id,
          ErrorCode.MethodNotFound,
          `Method not found: ${req.method} (upstream "${this.upstream}" is a REST API: it has tools only)`,
        );
    }
  }

  async #call(req: JsonRpcRequest, opts: RequestOptions): Promise<JsonRpcResponse> {
    const name = req.params?.name;
    const t = typeof name === 'string' ? this.#up.tool(name) : undefined;
    if (!t) return errorResponse(req.id, ErrorCode.InvalidParams, `Unknown tool: ${String(name)}`);
    const args = req.params?.arguments ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args))
      return errorResponse(req.id, ErrorCode.InvalidParams, 'Invalid params: "arguments" must be an object');
    const up = this.#up;
    if (!opts.internal) up.acquire();
    const controller = new AbortController();
    const key = JSON.stringify(req.id);
    this.#inFlight.set(key, controller);
    const timeout = setTimeout(
      () => controller.abort(Errors.upstreamTimeout(`upstream "${up.name}" did not answer in time`)),
      opts.timeoutMs ?? up.options.requestTimeoutMs,
    );
    const onAbort = () => controller.abort(Errors.cancelled('Request cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const credentials = this.#credentials ? await this.#credentials.headers() : undefined;
      const result = await up.call(
        t,
        args as Record<string, unknown>,
        credentials,
        controller.signal,
        opts.trace,
      );
      const res: JsonRpcResponse = { jsonrpc: '2.0', id: req.id, result };
      const status = statusOf.get(result);
      return status === undefined ? res : withUpstreamCode(res, status);
    } catch (err) {
      const e =
        err instanceof GatehouseError
          ? err
          : Errors.upstreamProtocol(
              `upstream "${up.name}": ${err instanceof Error ? err.message : String(err)}`,
            );
      return e.toResponse(req.id);
    } finally {
      clearTimeout(timeout);
      opts.signal?.removeEventListener('abort', onAbort);
      this.#inFlight.delete(key);
      if (!opts.internal) up.release();
    }
  }

  async notify(_n: JsonRpcNotification): Promise<void> {}

  async respond(_res: JsonRpcResponse): Promise<void> {}

  async cancel(id: JsonRpcRequest['id']): Promise<void> {
    this.#inFlight.get(JSON.stringify(id))?.abort(Errors.cancelled('Request cancelled'));
  }

  onServerMessage(_handler: (m: JsonRpcMessage) => void): void {}

  async close(): Promise<void> {
    for (const c of this.#inFlight.values()) c.abort(Errors.cancelled('Session closed'));
  }
}

function toolError(text: string): Record<string, unknown> {
  return { content: [{ type: 'text', text }], isError: true };
}

function discardBody(body: Body): void {
  (body as unknown as NodeJS.EventEmitter).on('error', () => {});
  body.destroy();
}

/** The whole body, or an error once it passes `limit` bytes. */
async function readLimited(body: Body, limit: number, upstream: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > limit) {
      discardBody(body);
      throw Errors.upstreamProtocol(
        `upstream "${upstream}" answered with more than ${limit} bytes (limits.max_response_bytes)`,
      );
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
