// The load generator: opens an MCP session on a target, then drives `tools/call` (echo) in a closed loop
// — `concurrency` workers, each sending its next request as soon as the previous answer is read.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

export const PROTOCOL_VERSION = '2025-11-25';
const ACCEPT = 'application/json, text/event-stream';
const TIMEOUT_MS = 10_000;

export type Session = { readonly url: URL; readonly headers: Record<string, string> };

export type RoundResult = {
  calls: number;
  errors: number;
  elapsedMs: number;
  latenciesMs: number[];
};

/**
 * The JSON-RPC message of a body that is either `application/json` or an SSE stream. A stream may carry
 * a priming event with empty data (mcp-proxy sends one) and notifications or requests before the
 * answer: its message is the first event that is a response, else its first message.
 */
export function parseMessage(contentType: string, text: string): unknown {
  if (!contentType.startsWith('text/event-stream')) return JSON.parse(text);
  let first: unknown;
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
      .join('\n');
    if (data.trim() === '') continue;
    const message: unknown = JSON.parse(data);
    if (typeof message === 'object' && message !== null && ('result' in message || 'error' in message)) {
      return message;
    }
    first ??= message;
  }
  if (first === undefined) throw new Error('the event stream holds no message');
  return first;
}

async function post(url: URL, headers: Record<string, string>, message: unknown) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(message),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${methodOf(message)} -> HTTP ${res.status}: ${text.slice(0, 300)}`);
  return { res, text };
}

function methodOf(message: unknown): string {
  return typeof message === 'object' && message !== null && 'method' in message
    ? String(message.method)
    : '?';
}

/**
 * initialize + notifications/initialized, as any MCP client would; returns the headers to send after.
 * `extraHeaders` (e.g. `authorization`) go on every request of the session.
 */
export async function openSession(url: URL, extraHeaders: Record<string, string> = {}): Promise<Session> {
  const { res, text } = await post(url, extraHeaders, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'gatehouse-bench', version: '0.1.0' },
    },
  });
  const init = parseMessage(res.headers.get('content-type') ?? '', text) as {
    result?: { protocolVersion?: string };
    error?: unknown;
  };
  if (init.result?.protocolVersion === undefined) {
    throw new Error(`initialize failed: ${text.slice(0, 300)}`);
  }
  const headers: Record<string, string> = {
    ...extraHeaders,
    'mcp-protocol-version': init.result.protocolVersion,
  };
  const sessionId = res.headers.get('mcp-session-id');
  if (sessionId !== null) headers['mcp-session-id'] = sessionId;
  await post(url, headers, { jsonrpc: '2.0', method: 'notifications/initialized' });
  return { url, headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers } };
}

export function createPool(session: Session, connections: number): Pool {
  return new Pool(session.url.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
}

let lastId = 0;

/** One call; false when it failed in any way: transport, HTTP status, JSON-RPC error, tool error, wrong id. */
export async function callEcho(pool: Pool, session: Session): Promise<boolean> {
  const id = ++lastId;
  try {
    const res = await pool.request({
      method: 'POST',
      path: session.url.pathname,
      headers: session.headers,
      body: `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) return false;
    const contentType = res.headers['content-type'];
    const msg = parseMessage(typeof contentType === 'string' ? contentType : '', text) as {
      id?: unknown;
      result?: { isError?: boolean; content?: Array<{ text?: string }> };
    };
    return msg.id === id && msg.result?.isError !== true && msg.result?.content?.[0]?.text === 'hello';
  } catch {
    return false;
  }
}

export async function runRound(
  pool: Pool,
  session: Session,
  concurrency: number,
  durationMs: number,
): Promise<RoundResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const ok = await callEcho(pool, session);
      latenciesMs.push(performance.now() - t0);
      if (!ok) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { calls: latenciesMs.length, errors, elapsedMs: performance.now() - start, latenciesMs };
}
