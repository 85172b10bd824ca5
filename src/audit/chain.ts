// The hash chain of a sink: each record carries the hash of the one before it, and its own hash is
// sha256 over a canonical serialisation of all its columns (prev_hash included). Removing, reordering or
// altering a record breaks the chain at that point; a retention purge records the point it cut at.

import { createHash } from 'node:crypto';
import { type AuditRow, COLUMNS, type StoredRecord } from './record.ts';

/** The prev_hash of a sink's first record. */
export const GENESIS = '0'.repeat(64);

/** Where a chain (or a verified range) starts: the seq and hash its next record must follow. */
export interface ChainPoint {
  seq: number;
  hash: string;
}

const HASHED = COLUMNS.filter((c) => c !== 'hash');

/** The canonical serialisation: a JSON array of every column but `hash`, in COLUMNS order, nulls explicit. */
export function canonical(r: Omit<StoredRecord, 'hash'>): string {
  const values = new Array<unknown>(HASHED.length);
  for (let i = 0; i < HASHED.length; i++)
    values[i] = (r as unknown as Record<string, unknown>)[HASHED[i]!] ?? null;
  return JSON.stringify(values);
}

export function recordHash(r: Omit<StoredRecord, 'hash'>): string {
  return createHash('sha256').update(canonical(r)).digest('hex');
}

/** Integer columns and their bounds (PostgreSQL INTEGER / BIGINT, JavaScript's exact integers). */
const INT_COLUMNS: readonly [keyof AuditRow, number][] = [
  ['response_code', 2 ** 31 - 1],
  ['jsonrpc_code', 2 ** 31 - 1],
  ['upstream_response_code', 2 ** 31 - 1],
  ['request_bytes', Number.MAX_SAFE_INTEGER],
  ['response_bytes', Number.MAX_SAFE_INTEGER],
];
const FLOAT_COLUMNS: readonly (keyof AuditRow)[] = ['latency_ms', 'upstream_latency_ms'];

/**
 * A row as every sink can store it and read it back unchanged (so that its hash still matches): text
 * without NUL characters (PostgreSQL refuses them) or lone UTF-16 surrogates (PostgreSQL refuses them;
 * SQLite stores U+FFFD instead), both replaced by U+FFFD; integers in their column's range and finite
 * numbers, else null (0 for NOT NULL columns). Many of these values are chosen by clients or upstreams: one
 * that a sink refuses would fail its batch on every retry and stop the sink for good.
 */
export function storable(row: AuditRow): AuditRow {
  let out: AuditRow | undefined;
  const set = (k: keyof AuditRow, v: unknown) => {
    out ??= { ...row };
    (out as unknown as Record<string, unknown>)[k] = v;
  };
  for (const k of Object.keys(row) as (keyof AuditRow)[]) {
    const v = row[k];
    if (typeof v === 'string' && (!v.isWellFormed() || v.includes('\0')))
      set(k, v.toWellFormed().replaceAll('\0', '\uFFFD'));
  }
  for (const [k, max] of INT_COLUMNS) {
    const v = row[k];
    if (v !== null && v !== undefined && !(Number.isInteger(v) && Math.abs(v as number) <= max))
      set(k, k === 'response_code' ? 0 : null);
  }
  for (const k of FLOAT_COLUMNS) {
    const v = row[k];
    if (v !== null && v !== undefined && !Number.isFinite(v)) set(k, k === 'latency_ms' ? 0 : null);
  }
  return out ?? row;
}

/** Places rows after `tip`, in order: each gets the next seq, the previous hash, and its own hash. */
export function link(rows: readonly AuditRow[], tip: ChainPoint): StoredRecord[] {
  const out: StoredRecord[] = new Array(rows.length);
  let seq = tip.seq;
  let prev = tip.hash;
  for (let i = 0; i < rows.length; i++) {
    const r = { ...storable(rows[i]!), seq: ++seq, prev_hash: prev } as StoredRecord;
    r.hash = recordHash(r);
    prev = r.hash;
    out[i] = r;
  }
  return out;
}

export interface BrokenRecord {
  seq: number;
  id: string | null;
  ts: number | null;
  problem: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /**
   * What the first checked record follows: genesis, a purge checkpoint, the record before the range, or
   * (files) the oldest record kept after rotation.
   */
  anchor: (ChainPoint & { kind: 'genesis' | 'checkpoint' | 'record' | 'rotated' }) | undefined;
  first: number | undefined;
  last: number | undefined;
  /** The hash of the last record checked (compare with one noted earlier to detect a cut tail). */
  lastHash: string | undefined;
  broken: BrokenRecord | undefined;
}

/**
 * Checks records given in seq order. `anchorFor(seq)` names the point the first record must follow
 * (genesis for seq 1, a purge checkpoint, the record before a range) or undefined when nothing vouches
 * for what came before (records missing).
 */
export async function verifyChain(
  records: AsyncIterable<StoredRecord> | Iterable<StoredRecord>,
  anchorFor: (firstSeq: number) => Promise<VerifyResult['anchor']> | VerifyResult['anchor'],
): Promise<VerifyResult> {
  const result: VerifyResult = {
    ok: true,
    checked: 0,
    anchor: undefined,
    first: undefined,
    last: undefined,
    lastHash: undefined,
    broken: undefined,
  };
  let prev: ChainPoint | undefined;
  const fail = (r: StoredRecord, problem: string): VerifyResult => {
    result.ok = false;
    result.broken = { seq: r.seq, id: r.id ?? null, ts: r.ts ?? null, problem };
    return result;
  };
  for await (const r of records) {
    if (prev === undefined) {
      const anchor = await anchorFor(r.seq);
      result.anchor = anchor;
      result.first = r.seq;
      if (!anchor)
        return fail(r, `records before seq ${r.seq} are missing and no retention purge recorded a cut there`);
      prev = anchor;
    }
    if (r.seq !== prev.seq + 1)
      return fail(
        r,
        r.seq > prev.seq + 1
          ? `record${r.seq - prev.seq > 2 ? 's' : ''} ${prev.seq + 1}${r.seq - prev.seq > 2 ? `..${r.seq - 1}` : ''} missing`
          : `out of order after seq ${prev.seq}`,
      );
    if (r.prev_hash !== prev.hash)
      return fail(
        r,
        `prev_hash does not match the hash of seq ${prev.seq} (a record was removed or altered)`,
      );
    if (recordHash(r) !== r.hash)
      return fail(r, 'its content does not match its hash (the record was altered)');
    prev = { seq: r.seq, hash: r.hash };
    result.checked++;
    result.last = r.seq;
    result.lastHash = r.hash;
  }
  return result;
}
