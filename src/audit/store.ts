// The two faces of an audit sink: writing batches (every sink) and reading them back — query, export,
// verify, purge — for the sinks that can (SQLite, PostgreSQL, JSON Lines files). The SQL shared by the
// SQLite and PostgreSQL stores lives here too.

import type { ChainPoint, VerifyResult } from './chain.ts';
import type { PseudonymField, SinkPrivacy } from './privacy.ts';
import type { AuditRow, StoredRecord } from './record.ts';

export interface AuditSink {
  readonly name: string;
  readonly type: 'sqlite' | 'postgres' | 'jsonl' | 'stdout';
  /**
   * Appends rows, in order, to the sink's chain: all or none. `retry` says the rows may have been written
   * already (a retry after an unknown outcome, a replay after a crash): rows already present are skipped.
   */
  write(rows: readonly AuditRow[], retry: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface AuditFilter {
  since?: number | undefined;
  until?: number | undefined;
  user?: string | undefined;
  agent?: string | undefined;
  tenant?: string | undefined;
  tool?: string | undefined;
  resource?: string | undefined;
  prompt?: string | undefined;
  decision?: 'allow' | 'deny' | undefined;
  route?: string | undefined;
  server?: string | undefined;
  method?: string | undefined;
  session?: string | undefined;
  trace?: string | undefined;
  outcome?: string | undefined;
}

export interface QueryOptions {
  limit: number;
  /** Newest first (default) or oldest first. */
  order?: 'desc' | 'asc';
  /** Cursor: only records after this seq in the chosen order (below it for desc, above it for asc). */
  after?: number | undefined;
}

export interface PurgeResult {
  /** Records removed. */
  deleted: number;
  /** The chain point cut at (the last removed record), when any was removed. */
  cut: ChainPoint | undefined;
}

export interface AuditStore {
  readonly name: string;
  readonly type: 'sqlite' | 'postgres' | 'jsonl';
  query(filter: AuditFilter, opts: QueryOptions): Promise<StoredRecord[]>;
  /** Every record matching, oldest first (export). */
  records(filter: AuditFilter): AsyncIterable<StoredRecord>;
  /** Proves the records of a time range (default: all) complete and unaltered. */
  verify(range: { since?: number | undefined; until?: number | undefined }): Promise<VerifyResult>;
  /** Removes records older than `now - retentionMs`, recording the chain point cut at. */
  purge(now: number, retentionMs: number): Promise<PurgeResult>;
  close(): Promise<void>;
}

/** Filter fields → columns; the ones a sink may pseudonymise say so. */
const FILTER_COLUMNS: Record<
  Exclude<keyof AuditFilter, 'since' | 'until'>,
  { column: string; pseudonym?: PseudonymField }
> = {
  user: { column: 'user_id', pseudonym: 'user_id' },
  agent: { column: 'agent_identity', pseudonym: 'agent_identity' },
  tenant: { column: 'tenant', pseudonym: 'tenant' },
  tool: { column: 'tool_name' },
  resource: { column: 'resource_uri' },
  prompt: { column: 'prompt_name' },
  decision: { column: 'decision' },
  route: { column: 'route' },
  server: { column: 'mcp_server' },
  method: { column: 'mcp_method' },
  session: { column: 'session_id', pseudonym: 'session_id' },
  trace: { column: 'trace_id' },
  outcome: { column: 'outcome' },
};

/**
 * A WHERE clause (with its values) for a filter and cursor. `ph(n)` spells the n-th placeholder (1-based)
 * and `ts(ms)` the value of a timestamp parameter, so SQLite and PostgreSQL share it.
 */
export function whereClause(
  filter: AuditFilter,
  privacy: SinkPrivacy,
  ph: (n: number) => string,
  ts: (ms: number) => unknown,
  cursor?: { op: '<' | '>'; seq: number },
): { sql: string; values: unknown[] } {
  const conds: string[] = [];
  const values: unknown[] = [];
  const add = (expr: (p: string) => string, v: unknown) => {
    values.push(v);
    conds.push(expr(ph(values.length)));
  };
  if (filter.since !== undefined) add((p) => `ts >= ${p}`, ts(filter.since));
  if (filter.until !== undefined) add((p) => `ts <= ${p}`, ts(filter.until));
  for (const [key, spec] of Object.entries(FILTER_COLUMNS)) {
    const v = filter[key as keyof typeof FILTER_COLUMNS];
    if (v === undefined) continue;
    add((p) => `${spec.column} = ${p}`, spec.pseudonym ? privacy.stored(spec.pseudonym, v) : v);
  }
  if (cursor) add((p) => `seq ${cursor.op} ${p}`, cursor.seq);
  return { sql: conds.length ? `WHERE ${conds.join(' AND ')}` : '', values };
}

/** The cursor condition of a page in the given order. */
export function cursorOf(opts: QueryOptions): { op: '<' | '>'; seq: number } | undefined {
  if (opts.after === undefined) return undefined;
  return { op: (opts.order ?? 'desc') === 'desc' ? '<' : '>', seq: opts.after };
}

/** Columns with SQL types, per dialect (canonical order; seq first). */
export function columnDefinitions(dialect: 'sqlite' | 'postgres'): string {
  const pg = dialect === 'postgres';
  const text = 'TEXT';
  const int = pg ? 'INTEGER' : 'INTEGER';
  const big = pg ? 'BIGINT' : 'INTEGER';
  const real = pg ? 'DOUBLE PRECISION' : 'REAL';
  const defs: [string, string][] = [
    ['seq', pg ? 'BIGINT PRIMARY KEY' : 'INTEGER PRIMARY KEY'],
    ['id', `${text} NOT NULL UNIQUE`],
    ['ts', pg ? 'TIMESTAMPTZ NOT NULL' : 'INTEGER NOT NULL'],
    ['user_id', text],
    ['agent_identity', text],
    ['tenant', text],
    ['mcp_server', text],
    ['route', `${text} NOT NULL`],
    ['mcp_method', text],
    ['tool_name', text],
    ['resource_uri', text],
    ['prompt_name', text],
    ['decision', `${text} NOT NULL`],
    ['reason', text],
    ['outcome', `${text} NOT NULL`],
    ['response_code', `${int} NOT NULL`],
    ['jsonrpc_code', int],
    ['upstream_response_code', int],
    ['is_error', pg ? 'BOOLEAN NOT NULL' : 'INTEGER NOT NULL'],
    ['latency_ms', `${real} NOT NULL`],
    ['upstream_latency_ms', real],
    ['request_bytes', big],
    ['response_bytes', big],
    ['session_id', text],
    ['request_id', text],
    ['rpc_id', text],
    ['trace_id', text],
    ['span_id', text],
    ['client_ip', text],
    ['user_agent', text],
    ['error_message', text],
    ['arguments', text],
    ['result', text],
    ['prev_hash', `${text} NOT NULL`],
    ['hash', `${text} NOT NULL`],
  ];
  return defs.map(([c, t]) => `${c} ${t}`).join(',\n  ');
}

/** A stored record from a database row (types normalised: numbers, booleans, epoch ms). */
export function fromDbRow(row: Record<string, unknown>): StoredRecord {
  const num = (v: unknown): number | null =>
    v === null || v === undefined ? null : typeof v === 'number' ? v : Number(v);
  const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
  const ts = row.ts instanceof Date ? row.ts.getTime() : Number(row.ts);
  return {
    seq: Number(row.seq),
    id: String(row.id),
    ts,
    user_id: str(row.user_id),
    agent_identity: str(row.agent_identity),
    tenant: str(row.tenant),
    mcp_server: str(row.mcp_server),
    route: String(row.route),
    mcp_method: str(row.mcp_method),
    tool_name: str(row.tool_name),
    resource_uri: str(row.resource_uri),
    prompt_name: str(row.prompt_name),
    // Read as stored, never normalised: a tampered value must fail the hash, not be mended by the reader.
    decision: String(row.decision) as 'allow' | 'deny',
    reason: str(row.reason),
    outcome: String(row.outcome),
    response_code: Number(row.response_code),
    jsonrpc_code: num(row.jsonrpc_code),
    upstream_response_code: num(row.upstream_response_code),
    is_error: (row.is_error === 1 ? true : row.is_error === 0 ? false : row.is_error) as boolean,
    latency_ms: Number(row.latency_ms),
    upstream_latency_ms: num(row.upstream_latency_ms),
    request_bytes: num(row.request_bytes),
    response_bytes: num(row.response_bytes),
    session_id: str(row.session_id),
    request_id: str(row.request_id),
    rpc_id: str(row.rpc_id),
    trace_id: str(row.trace_id),
    span_id: str(row.span_id),
    client_ip: str(row.client_ip),
    user_agent: str(row.user_agent),
    error_message: str(row.error_message),
    arguments: str(row.arguments),
    result: str(row.result),
    prev_hash: String(row.prev_hash),
    hash: String(row.hash),
  };
}

/** Records a store's query() matches, oldest first, read a page at a time (for export and verify). */
export async function* pagedRecords(
  store: Pick<AuditStore, 'query'>,
  filter: AuditFilter,
  pageSize: number,
): AsyncIterable<StoredRecord> {
  let after: number | undefined;
  for (;;) {
    const page = await store.query(filter, { limit: pageSize, order: 'asc', after });
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.seq;
  }
}
