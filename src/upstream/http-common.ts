// What the HTTP-based upstreams (Streamable HTTP, legacy SSE) share: undici's answer as they use it, and
// the small readers around it.

import { Errors } from '../mcp/errors.ts';
import { invalidMessageReason, type JsonRpcMessage } from '../mcp/jsonrpc.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CredentialProvider, CredentialSource } from './types.ts';

/** What configures an upstream reached over HTTP (Streamable HTTP or legacy SSE). */
export interface HttpUpstreamOptions {
  name: string;
  url: string;
  /** Static headers, secrets already resolved. Never logged. */
  headers: Record<string, string>;
  /** Per-session credentials (upstream `auth`: token exchange, identity assertion), added to every request. */
  credentials?: CredentialProvider | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxConcurrency: number;
  /** Largest single message (JSON body or SSE event) accepted from the upstream. */
  maxMessageBytes: number;
  tls?: { ca?: string; cert?: string; key?: string; servername?: string };
  logger: Logger;
}

/** undici's response body, as much of it as the upstreams use. */
export type Body = AsyncIterable<Buffer | string> & {
  text(): Promise<string>;
  setEncoding(enc: 'utf8'): unknown;
  destroy(err?: Error): unknown;
  dump?(opts?: { limit: number }): Promise<void>;
};

export interface HttpAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Body;
}

/** Drops a body we will not read; its late 'error' (aborted) must not become an uncaught exception. */
export function discard(body: Body): void {
  (body as unknown as NodeJS.EventEmitter).on('error', () => {});
  body.destroy();
}

export function isEventStream(res: HttpAnswer): boolean {
  return String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
}

export function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One JSON-RPC message from an upstream's text, or an error naming the upstream and what is wrong. */
export function parseMessage(text: string, upstream: string): JsonRpcMessage {
  const v = tryParse(text);
  if (v === undefined) throw Errors.upstreamProtocol(`upstream "${upstream}" sent malformed JSON`);
  const reason = invalidMessageReason(v);
  if (reason)
    throw Errors.upstreamProtocol(`upstream "${upstream}" sent an invalid JSON-RPC message: ${reason}`);
  return v as JsonRpcMessage;
}

/**
 * The headers of one request: `base` with the current credential over it. The merged object is kept
 * while neither part changes, so the hot path allocates nothing; a credential being (re)obtained makes
 * it a promise.
 */
export class RequestHeaders {
  readonly #source: CredentialSource | undefined;
  #base: Record<string, string> | undefined;
  #creds: Readonly<Record<string, string>> | undefined;
  #merged: Record<string, string> | undefined;

  constructor(source: CredentialSource | undefined) {
    this.#source = source;
  }

  get(base: Record<string, string>): Record<string, string> | Promise<Record<string, string>> {
    if (!this.#source) return base;
    const creds = this.#source.headers();
    return creds instanceof Promise ? creds.then((c) => this.#merge(base, c)) : this.#merge(base, creds);
  }

  #merge(base: Record<string, string>, creds: Readonly<Record<string, string>>): Record<string, string> {
    if (base === this.#base && creds === this.#creds && this.#merged) return this.#merged;
    this.#base = base;
    this.#creds = creds;
    this.#merged = { ...base, ...creds };
    return this.#merged;
  }
}

/** undici's connect options for an upstream: the connect timeout and its TLS (custom CA, mTLS, SNI). */
export function connectOptions(
  timeoutMs: number,
  tls: { ca?: string; cert?: string; key?: string; servername?: string } | undefined,
): Record<string, unknown> {
  return {
    timeout: timeoutMs,
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(tls?.cert ? { cert: tls.cert, key: tls.key } : {}),
    ...(tls?.servername ? { servername: tls.servername } : {}),
  };
}
