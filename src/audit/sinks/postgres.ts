// The PostgreSQL audit sink, for gateways that scale out (every instance appends to one chain): tables
// created and migrated by the gateway under an advisory lock; each batch is one transaction that takes a
// per-table advisory lock, reads the chain tip and inserts every row in one statement. Also the store that
// query, export, verify and the retention purge read.

import pg from 'pg';
import { type ChainPoint, GENESIS, link, type VerifyResult, verifyChain } from '../chain.ts';
import type { SinkPrivacy } from '../privacy.ts';
import { type AuditRow, COLUMNS, type StoredRecord } from '../record.ts';
import {
  type AuditFilter,
  type AuditSink,
  type AuditStore,
  columnDefinitions,
  cursorOf,
  fromDbRow,
  type PurgeResult,
  pagedRecords,
  type QueryOptions,
  whereClause,
} from '../store.ts';

/** A connection attempt or a statement taking longer counts as a failure (the batch is retried). */
const TIMEOUT_MS = 5_000;
const SCHEMA_VERSION = 1;
const PURGE_CHUNK = 5_000;
const PAGE = 1_000;

export interface PgAuditOptions {
  name: string;
  url: string;
  schema?: string | undefined;
  table: string;
  privacy: SinkPrivacy;
}

type Client = pg.PoolClient;

export class PgAuditStore implements AuditSink, AuditStore {
  readonly type = 'postgres';
  readonly name: string;
  readonly #pool: pg.Pool;
  readonly #privacy: SinkPrivacy;
  readonly #table: string;
  readonly #checkpoints: string;
  readonly #schema: string | undefined;
  readonly #lockKey: string;
  #ready: Promise<void> | undefined;

  constructor(o: PgAuditOptions) {
    this.name = o.name;
    this.#privacy = o.privacy;
    this.#schema = o.schema;
    const q = o.schema ? `${o.schema}.` : '';
    this.#table = `${q}${o.table}`;
    this.#checkpoints = `${q}${o.table}_checkpoints`;
    this.#lockKey = `gatehouse-audit:${this.#table}`;
    this.#pool = new pg.Pool({
      connectionString: o.url,
      max: 4,
      connectionTimeoutMillis: TIMEOUT_MS,
      query_timeout: TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'gatehouse-audit',
    });
    // A broken idle connection (database restarted, network cut) must not crash the process; the next
    // write fails and is retried.
    this.#pool.on('error', () => undefined);
  }

  /** Creates or migrates the tables (once; again after a failure). */
  ready(): Promise<void> {
    this.#ready ??= this.#migrate().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #migrate(): Promise<void> {
    await this.#tx(async (c) => {
      // Instances starting together must not race on CREATE (it is not atomic in PostgreSQL).
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${this.#lockKey}:schema`]);
      if (this.#schema) await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.#schema}`);
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${this.#table}_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      );
      const v = await c.query(`SELECT value FROM ${this.#table}_meta WHERE key = 'schema_version'`);
      const version = v.rows[0] ? Number(v.rows[0].value) : 0;
      if (version >= SCHEMA_VERSION) return;
      // Version 1: the records, their indexes and the purge checkpoints.
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.#table} (\n  ${columnDefinitions('postgres')}\n)`);
      const base = this.#table.replace(/^.*\./, '');
      await c.query(`CREATE INDEX IF NOT EXISTS ${base}_ts ON ${this.#table} (ts)`);
      await c.query(`CREATE INDEX IF NOT EXISTS ${base}_user ON ${this.#table} (user_id, ts)`);
      await c.query(`CREATE INDEX IF NOT EXISTS ${base}_tool ON ${this.#table} (tool_name, ts)`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.#checkpoints} (
        cut_seq BIGINT PRIMARY KEY,
        cut_hash TEXT NOT NULL,
        cut_at TIMESTAMPTZ NOT NULL,
        cutoff TIMESTAMPTZ NOT NULL
      )`);
      await c.query(
        `INSERT INTO ${this.#table}_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [String(SCHEMA_VERSION)],
      );
    });
  }

  async #tx<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    // A connection that breaks between two statements emits 'error' on the client: without a listener
    // that would be an uncaught exception. The pending statement fails anyway, and the client is discarded.
    const onError = (err: Error) => {
      broken = err;
    };
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      broken = err as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.off('error', onError);
      c.release(broken);
    }
  }

  async write(rows: readonly AuditRow[], retry: boolean): Promise<void> {
    await this.ready();
    await this.#tx(async (c) => {
      // One writer per table at a time: the chain tip read below is then the one the rows follow.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.#lockKey]);
      let todo = rows;
      if (retry) {
        const r = await c.query(`SELECT id FROM ${this.#table} WHERE id = ANY($1::text[])`, [
          rows.map((x) => x.id),
        ]);
        if (r.rows.length > 0) {
          const present = new Set(r.rows.map((x) => String(x.id)));
          todo = rows.filter((x) => !present.has(x.id));
        }
      }
      if (todo.length === 0) return;
      const linked = link(todo, await this.#tipPoint(c));
      const json = JSON.stringify(linked.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() })));
      await c.query(
        `INSERT INTO ${this.#table} (${COLUMNS.join(', ')})
         SELECT ${COLUMNS.join(', ')} FROM json_populate_recordset(NULL::${this.#table}, $1::json)`,
        [json],
      );
    });
  }

  async #tipPoint(c: Client): Promise<ChainPoint> {
    const r = await c.query(`SELECT seq, hash FROM ${this.#table} ORDER BY seq DESC LIMIT 1`);
    const row =
      r.rows[0] ??
      (
        await c.query(
          `SELECT cut_seq AS seq, cut_hash AS hash FROM ${this.#checkpoints} ORDER BY cut_seq DESC LIMIT 1`,
        )
      ).rows[0];
    return row ? { seq: Number(row.seq), hash: String(row.hash) } : { seq: 0, hash: GENESIS };
  }

  async query(filter: AuditFilter, opts: QueryOptions): Promise<StoredRecord[]> {
    await this.ready();
    const w = whereClause(
      filter,
      this.#privacy,
      (n) => `$${n}`,
      (ms) => new Date(ms),
      cursorOf(opts),
    );
    const order = (opts.order ?? 'desc') === 'desc' ? 'DESC' : 'ASC';
    const r = await this.#pool.query(
      `SELECT * FROM ${this.#table} ${w.sql} ORDER BY seq ${order} LIMIT $${w.values.length + 1}`,
      [...w.values, opts.limit],
    );
    return r.rows.map(fromDbRow);
  }

  records(filter: AuditFilter): AsyncIterable<StoredRecord> {
    return pagedRecords(this, filter, PAGE);
  }

  async verify(range: { since?: number; until?: number }): Promise<VerifyResult> {
    await this.ready();
    const one = async (sql: string, values: unknown[] = []): Promise<number | undefined> => {
      const v = (await this.#pool.query(sql, values)).rows[0]?.v;
      return v === null || v === undefined ? undefined : Number(v);
    };
    const lo =
      range.since === undefined
        ? await one(`SELECT min(seq) AS v FROM ${this.#table}`)
        : await one(`SELECT min(seq) AS v FROM ${this.#table} WHERE ts >= $1`, [new Date(range.since)]);
    const hi =
      range.until === undefined
        ? await one(`SELECT max(seq) AS v FROM ${this.#table}`)
        : await one(`SELECT max(seq) AS v FROM ${this.#table} WHERE ts <= $1`, [new Date(range.until)]);
    const pool = this.#pool;
    const table = this.#table;
    async function* inRange(): AsyncIterable<StoredRecord> {
      if (lo === undefined || hi === undefined || hi < lo) return;
      let after = lo - 1;
      for (;;) {
        const page = (
          await pool.query(`SELECT * FROM ${table} WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`, [
            after,
            hi,
            PAGE,
          ])
        ).rows.map(fromDbRow);
        yield* page;
        if (page.length < PAGE) return;
        after = page[page.length - 1]!.seq;
      }
    }
    return verifyChain(inRange(), async (first) => {
      const before = (await pool.query(`SELECT seq, hash FROM ${table} WHERE seq = $1`, [first - 1])).rows[0];
      if (before) return { seq: Number(before.seq), hash: String(before.hash), kind: 'record' };
      const cp = (
        await pool.query(
          `SELECT cut_seq AS seq, cut_hash AS hash FROM ${this.#checkpoints} WHERE cut_seq = $1`,
          [first - 1],
        )
      ).rows[0];
      if (cp) return { seq: Number(cp.seq), hash: String(cp.hash), kind: 'checkpoint' };
      return first === 1 ? { seq: 0, hash: GENESIS, kind: 'genesis' } : undefined;
    });
  }

  async purge(now: number, retentionMs: number): Promise<PurgeResult> {
    await this.ready();
    const cutoff = new Date(now - retentionMs);
    const result: PurgeResult = { deleted: 0, cut: undefined };
    for (;;) {
      const done = await this.#tx(async (c) => {
        // Purges and writes of every instance take turns; a purge chunk is short.
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.#lockKey]);
        const young = (await c.query(`SELECT min(seq) AS v FROM ${this.#table} WHERE ts >= $1`, [cutoff]))
          .rows[0]?.v;
        const cutRow =
          young === null || young === undefined
            ? (await c.query(`SELECT max(seq) AS v FROM ${this.#table}`)).rows[0]?.v
            : Number(young) - 1;
        if (cutRow === null || cutRow === undefined) return true;
        const cut = Number(cutRow);
        const first = (await c.query(`SELECT min(seq) AS v FROM ${this.#table}`)).rows[0]?.v;
        if (first === null || first === undefined || Number(first) > cut) return true;
        const end = Math.min(cut, Number(first) + PURGE_CHUNK - 1);
        const last = (
          await c.query(`SELECT seq, hash FROM ${this.#table} WHERE seq <= $1 ORDER BY seq DESC LIMIT 1`, [
            end,
          ])
        ).rows[0];
        if (!last) return true;
        const point = { seq: Number(last.seq), hash: String(last.hash) };
        await c.query(
          `INSERT INTO ${this.#checkpoints} (cut_seq, cut_hash, cut_at, cutoff) VALUES ($1, $2, $3, $4)
           ON CONFLICT (cut_seq) DO NOTHING`,
          [point.seq, point.hash, new Date(now), cutoff],
        );
        const r = await c.query(`DELETE FROM ${this.#table} WHERE seq <= $1`, [point.seq]);
        result.deleted += r.rowCount ?? 0;
        result.cut = point;
        return point.seq >= cut;
      });
      if (done) return result;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }
}
