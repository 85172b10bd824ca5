// Raw HTTP to the gateway's MCP endpoint, and the JSON-RPC messages of its answers (JSON or SSE).

import type { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';

export type Msg = Record<string, unknown>;

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The JSON-RPC messages of the body: one JSON object, a JSON array, or every SSE event's data. */
  messages: Msg[];
}

export const ACCEPT = 'application/json, text/event-stream';

/** The JSON-RPC messages of a body of content type `type`. */
export function parseMessages(text: string, type: string): Msg[] {
  if (type.startsWith('text/event-stream')) {
    return text
      .split(/\r?\n\r?\n/)
      .map((ev) =>
        ev
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n'),
      )
      .filter((d) => d !== '')
      .map((d) => JSON.parse(d) as Msg);
  }
  if (type.startsWith('application/json') && text !== '') {
    const v = JSON.parse(text) as Msg | Msg[];
    return Array.isArray(v) ? v : [v];
  }
  return [];
}

/** Headers with defaults; a null value removes a default. */
export type HeaderSpec = Record<string, string | null>;

function buildHeaders(defaults: Record<string, string>, extra: HeaderSpec): Record<string, string> {
  const out: Record<string, string> = { ...defaults };
  for (const [k, v] of Object.entries(extra)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * A request to `url` (POST by default, with JSON accept and content-type headers) and its whole answer; a GET
 * answered 200 is an open stream, given back at once without its body.
 */
export async function send(
  url: string,
  opts: {
    method?: Dispatcher.HttpMethod;
    body?: unknown;
    raw?: string | Readable;
    headers?: HeaderSpec;
  } = {},
): Promise<Answer> {
  const method = opts.method ?? 'POST';
  const defaults: Record<string, string> =
    method === 'POST' ? { accept: ACCEPT, 'content-type': 'application/json' } : {};
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const res = await request(url, { method, headers: buildHeaders(defaults, opts.headers ?? {}), body });
  if (method === 'GET' && res.statusCode === 200) {
    // An open GET stream never ends on its own: do not wait for it.
    res.body.destroy();
    return { status: res.statusCode, headers: res.headers, text: '', messages: [] };
  }
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    messages: parseMessages(text, String(res.headers['content-type'] ?? '')),
  };
}

/** POSTs `body` as JSON, with `headers` over the defaults. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return send(url, { body, headers });
}
