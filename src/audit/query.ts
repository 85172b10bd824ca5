// Audit queries as people write them (CLI flags, admin query strings): `--since 1h` or an ISO date, field
// filters, a page cursor; and how records are shown (a table, JSON lines). Pure: values in, values out.

import { parseDuration } from '../config/units.ts';
import type { StoredRecord } from './record.ts';
import type { AuditFilter } from './store.ts';

/** The filters accepted, by their CLI / query-string name. */
export const FILTER_NAMES = [
  'since',
  'until',
  'user',
  'agent',
  'tenant',
  'tool',
  'resource',
  'prompt',
  'decision',
  'route',
  'server',
  'method',
  'session',
  'trace',
  'outcome',
] as const;

/** The latest epoch ms a Date can hold. */
const MAX_DATE_MS = 8.64e15;

/** A point in time: a duration back from `now` (`1h`, `7d`), an ISO date, or epoch ms. */
export function parseTime(v: string, now: number, what: string): number {
  const s = v.trim();
  if (/^\d{10,}$/.test(s)) {
    const ms = Number(s);
    if (ms > MAX_DATE_MS)
      throw new RangeError(`${what}: ${JSON.stringify(v)} is beyond the last representable date`);
    return ms;
  }
  const back = parseDuration(s);
  if (back !== undefined && /[a-z]$/i.test(s)) return now - back;
  const t = Date.parse(s);
  if (Number.isNaN(t))
    throw new RangeError(
      `${what}: ${JSON.stringify(v)} is neither a duration back from now (30m, 1h, 7d) nor a date (2026-01-31, 2026-01-31T12:00:00Z)`,
    );
  return t;
}

/** A filter from named string values (missing ones are absent); RangeError names what is wrong. */
export function parseFilter(get: (name: string) => string | undefined, now: number): AuditFilter {
  const f: AuditFilter = {};
  for (const name of FILTER_NAMES) {
    const v = get(name);
    if (v === undefined || v === '') continue;
    if (name === 'since' || name === 'until') f[name] = parseTime(v, now, name);
    else if (name === 'decision') {
      if (v !== 'allow' && v !== 'deny')
        throw new RangeError(`decision: "allow" or "deny" (got ${JSON.stringify(v)})`);
      f.decision = v;
    } else f[name] = v;
  }
  if (f.since !== undefined && f.until !== undefined && f.since > f.until)
    throw new RangeError('since is after until');
  return f;
}

/** An opaque page cursor for a record's seq, and back. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const m = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || !Number.isSafeInteger(Number(m[1])))
    throw new RangeError('cursor: not a cursor this API gave (use next_cursor as it is)');
  return Number(m[1]);
}

/** A record for people and APIs: an ISO time beside the epoch ms, payloads as JSON (not text). */
export function presentRecord(r: StoredRecord): Record<string, unknown> {
  const json = (s: string | null) => {
    if (s === null) return null;
    try {
      return JSON.parse(s) as unknown;
    } catch {
      return s;
    }
  };
  return { time: new Date(r.ts).toISOString(), ...r, arguments: json(r.arguments), result: json(r.result) };
}

const TABLE_COLUMNS: [string, (r: StoredRecord) => string][] = [
  ['TIME', (r) => new Date(r.ts).toISOString()],
  ['USER', (r) => r.user_id ?? '-'],
  ['AGENT', (r) => r.agent_identity ?? '-'],
  ['ROUTE', (r) => r.route || '-'],
  ['SERVER', (r) => r.mcp_server ?? '-'],
  ['METHOD', (r) => r.mcp_method ?? '-'],
  ['TARGET', (r) => r.tool_name ?? r.prompt_name ?? r.resource_uri ?? '-'],
  ['DECISION', (r) => r.decision],
  ['STATUS', (r) => `${r.response_code}${r.jsonrpc_code === null ? '' : `/${r.jsonrpc_code}`}`],
  ['MS', (r) => r.latency_ms.toFixed(1)],
  ['REASON', (r) => r.reason ?? ''],
];

const MAX_CELL = 48;

/**
 * Terminal control characters (C0, DEL, C1), line separators and bidirectional overrides: record fields hold
 * text that clients chose (tool names, reasons), which must not move the cursor, recolour or rewrite the
 * operator's terminal, or forge table rows. Shown as \uXXXX.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it escapes
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Records as an aligned text table (cells cut at 48 characters). */
export function formatTable(records: readonly StoredRecord[]): string {
  const cell = (raw: string) => {
    const s = printable(raw);
    return s.length > MAX_CELL ? `${s.slice(0, MAX_CELL - 1)}…` : s;
  };
  const rows = records.map((r) => TABLE_COLUMNS.map(([, f]) => cell(f(r))));
  const head = TABLE_COLUMNS.map(([h]) => h);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}
