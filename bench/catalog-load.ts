// The catalogue benchmark's load: `tools/list` followed through every `nextCursor`, and `tools/call` spread
// round-robin over many tools, each in a closed loop like load.ts and with every answer checked.
import { performance } from 'node:perf_hooks';
import type { Pool } from 'undici';
import type { JsonSchema } from './fixture-tools.ts';
import { parseMessage, type Session } from './load.ts';

/** Stops a list whose cursors never end (a gateway bug) instead of looping forever. */
const MAX_PAGES = 10_000;

export type ListedTool = { name: string; inputSchema?: JsonSchema };
export type Page = { tools: ListedTool[]; nextCursor: string | undefined };
export type Listing = { tools: ListedTool[]; pages: number };

/** tools/list rounds: a "list" is every page of the catalogue, fetched one after the other. */
export type ListRound = {
  lists: number;
  pages: number;
  errors: number;
  elapsedMs: number;
  listLatenciesMs: number[];
  pageLatenciesMs: number[];
  firstError: string | undefined;
};

/** One tools/call of a round-robin plan: its serialised params and the text the right upstream answers. */
export type PlannedCall = { params: string; expect: string };

export type CallRound = {
  calls: number;
  errors: number;
  elapsedMs: number;
  latenciesMs: number[];
  firstError: string | undefined;
};

type Answer = { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };

let lastId = 0;

/** One JSON-RPC request on the session (`params` already serialised); its result, or throws saying why not. */
export async function rpc(
  pool: Pool,
  session: Session,
  method: string,
  params: string,
  received?: { at: number },
): Promise<unknown> {
  const id = ++lastId;
  const res = await pool.request({
    method: 'POST',
    path: session.url.pathname,
    headers: session.headers,
    body: `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${params}}`,
  });
  const text = await res.body.text();
  // The answer's last byte is in: what follows (parsing, checking) is the load generator's own work.
  if (received) received.at = performance.now();
  if (res.statusCode !== 200) throw new Error(`${method} -> HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  const contentType = res.headers['content-type'];
  const msg = parseMessage(typeof contentType === 'string' ? contentType : '', text) as Answer;
  if (msg.error !== undefined) {
    throw new Error(`${method} -> JSON-RPC error ${String(msg.error.code)}: ${String(msg.error.message)}`);
  }
  if (msg.id !== id) throw new Error(`${method} -> answer to id ${JSON.stringify(msg.id)}, expected ${id}`);
  return msg.result;
}

export async function listPage(
  pool: Pool,
  session: Session,
  cursor: string | undefined,
  received?: { at: number },
): Promise<Page> {
  const result = (await rpc(
    pool,
    session,
    'tools/list',
    cursor === undefined ? '{}' : `{"cursor":${JSON.stringify(cursor)}}`,
    received,
  )) as { tools?: unknown; nextCursor?: unknown } | undefined;
  if (!Array.isArray(result?.tools)) throw new Error('tools/list -> result without a tools array');
  const next = result.nextCursor;
  if (next !== undefined && typeof next !== 'string')
    throw new Error('tools/list -> nextCursor is not a string');
  return { tools: result.tools as ListedTool[], nextCursor: next };
}

/**
 * A page checked cheaply (status, the answer's id, where its cursor is) without parsing hundreds of KB:
 * in timed rounds the client's parsing would otherwise compete with the gateway for the 2 cores. Every
 * 10th list of a round is parsed and checked in full (tool count, shapes) instead.
 */
async function lightPage(
  pool: Pool,
  session: Session,
  cursor: string | undefined,
  received: { at: number },
): Promise<string | undefined> {
  const id = ++lastId;
  const params = cursor === undefined ? '{}' : `{"cursor":${JSON.stringify(cursor)}}`;
  const res = await pool.request({
    method: 'POST',
    path: session.url.pathname,
    headers: session.headers,
    body: `{"jsonrpc":"2.0","id":${id},"method":"tools/list","params":${params}}`,
  });
  // The body is read as the chunks undici hands over, never joined into one 100s-of-KB string: only its
  // head and tail are looked at, so the client makes next to no garbage (its GC pauses would otherwise
  // land in the gateway's measured tail).
  let head: Buffer | undefined;
  let tail: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  let bytes = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    head ??= chunk;
    bytes += chunk.length;
    tail = chunk.length >= 1024 ? chunk : Buffer.concat([tail, chunk]).subarray(-4096);
  }
  received.at = performance.now();
  const start = head?.subarray(0, 300).toString('utf8') ?? '';
  if (res.statusCode !== 200) throw new Error(`tools/list -> HTTP ${res.statusCode}: ${start}`);
  if (!start.startsWith(`{"jsonrpc":"2.0","id":${id},"result":{"tools":[`) || bytes < 2)
    throw new Error(`tools/list -> unexpected answer: ${start.slice(0, 200)}`);
  const end = tail.subarray(-1024).toString('latin1');
  if (!end.endsWith('}}')) throw new Error(`tools/list -> the answer is cut short: …${end.slice(-100)}`);
  const at = end.lastIndexOf('"nextCursor":"');
  if (at < 0) return undefined;
  return end.slice(at + 14, end.indexOf('"', at + 14));
}

/** Every page, checked cheaply; returns the number of pages. */
async function listAllLight(pool: Pool, session: Session, pageLatenciesMs: number[]): Promise<number> {
  let cursor: string | undefined;
  let pages = 0;
  do {
    if (pages === MAX_PAGES) throw new Error(`tools/list -> still a nextCursor after ${MAX_PAGES} pages`);
    const t0 = performance.now();
    const received = { at: 0 };
    cursor = await lightPage(pool, session, cursor, received);
    pageLatenciesMs.push(received.at - t0);
    pages++;
  } while (cursor !== undefined);
  return pages;
}

/** Every page of the catalogue; the latency of each page is pushed onto `pageLatenciesMs` when given. */
export async function listAll(pool: Pool, session: Session, pageLatenciesMs?: number[]): Promise<Listing> {
  const tools: ListedTool[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    if (pages === MAX_PAGES) throw new Error(`tools/list -> still a nextCursor after ${MAX_PAGES} pages`);
    const t0 = performance.now();
    const received = { at: 0 };
    const page = await listPage(pool, session, cursor, received);
    // Page latency: request sent → last byte received (parsing the 100s of KB is the client's cost).
    pageLatenciesMs?.push(received.at - t0);
    pages++;
    for (const tool of page.tools) tools.push(tool);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { tools, pages };
}

/** `concurrency` workers, each listing the whole catalogue again as soon as it has it, for `durationMs`. */
export async function runListRound(
  pool: Pool,
  session: Session,
  concurrency: number,
  durationMs: number,
  expectedTools: number,
): Promise<ListRound> {
  const round: ListRound = {
    lists: 0,
    pages: 0,
    errors: 0,
    elapsedMs: 0,
    listLatenciesMs: [],
    pageLatenciesMs: [],
    firstError: undefined,
  };
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const pageMs: number[] = [];
      try {
        if (round.lists % 10 === 0) {
          const listing = await listAll(pool, session, pageMs);
          if (listing.tools.length !== expectedTools) {
            throw new Error(`tools/list -> ${listing.tools.length} tools, expected ${expectedTools}`);
          }
        } else await listAllLight(pool, session, pageMs);
        round.listLatenciesMs.push(performance.now() - t0);
      } catch (err) {
        round.errors++;
        round.firstError ??= (err as Error).message;
      }
      round.lists++;
      round.pages += pageMs.length;
      for (const ms of pageMs) round.pageLatenciesMs.push(ms);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  round.elapsedMs = performance.now() - start;
  return round;
}

/** `concurrency` workers sending the calls of `plan` in turn (shared round-robin), for `durationMs`. */
export async function runCallRound(
  pool: Pool,
  session: Session,
  plan: PlannedCall[],
  concurrency: number,
  durationMs: number,
): Promise<CallRound> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const call = plan[next++ % plan.length]!;
      const t0 = performance.now();
      try {
        const result = (await rpc(pool, session, 'tools/call', call.params)) as
          | { isError?: unknown; content?: Array<{ text?: unknown }> }
          | undefined;
        const text = result?.content?.[0]?.text;
        if (result?.isError === true || text !== call.expect) {
          throw new Error(
            `tools/call ${call.params} -> ${JSON.stringify(result)}, expected "${call.expect}"`,
          );
        }
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
      latenciesMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { calls: latenciesMs.length, errors, elapsedMs: performance.now() - start, latenciesMs, firstError };
}
