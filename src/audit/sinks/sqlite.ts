// The SQLite audit sink (built into Node, no setup: the default): WAL mode, one transaction per batch
// through a prepared statement, the chain tip read under the write lock (so two writers on one file still
// make one chain). Also the store that query, export, verify and the retention purge read. In a gateway
// (`threaded`), writes and purges run in a worker thread (sqlite-worker.ts): node:sqlite is synchronous,
// and hashing and inserting must not hold the event loop that serves requests; reads use a connection of
// their own (WAL lets them run beside the writer).

import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
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
import type { WorkerCall, WorkerReply } from './sqlite-worker.ts';

const TABLE = 'audit_log';
const CHECKPOINTS = 'audit_checkpoints';
const SCHEMA_VERSION = 1;
/** How long a write waits for another writer's lock before it counts as a failure (then retried). */
const BUSY_TIMEOUT_MS = 250;
/** Records removed per purge transaction (each records its own checkpoint). */
const PURGE_CHUNK = 5_000;
const PAGE = 1_000;

export class SqliteAuditStore implements AuditSink, AuditStore {
  readonly type = 'sqlite';
  readonly name: string;
  readonly path: string;
  readonly #privacy: SinkPrivacy;
  #db: DatabaseSync | undefined;
  #insert: StatementSync | undefined;
  #tip: StatementSync | undefined;
  #lastCheckpoint: StatementSync | undefined;
  readonly #threaded: boolean;
  #worker: Worker | undefined;
  #calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #callId = 0;

  constructor(name: string, path: string, privacy: SinkPrivacy, opts: { threaded?: boolean } = {}) {
    this.name = name;
    this.path = path;
    this.#privacy = privacy;
    this.#threaded = opts.threaded === true;
  }

  /** One request to the writer thread (started on first use, again after it died). */
  #call(msg: WorkerCall): Promise<unknown> {
    if (!this.#worker) {
      const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
      const w = new Worker(new URL(`./sqlite-worker${ext}`, import.meta.url), {
        workerData: { name: this.name, path: this.path },
      });
      w.unref();
      w.on('message', (r: WorkerReply) => {
        const call = this.#calls.get(r.id);
        if (!call) return;
        this.#calls.delete(r.id);
        if (r.ok) call.resolve(r.result);
        else call.reject(Object.assign(new Error(r.error), r.code ? { code: r.code } : {}));
      });
      const fail = (err: Error) => {
        if (this.#worker === w) this.#worker = undefined;
        for (const c of this.#calls.values()) c.reject(err);
        this.#calls.clear();
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`the audit writer thread exited (code ${code})`)));
      this.#worker = w;
    }
    const id = ++this.#callId;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      this.#worker!.postMessage({ ...msg, id });
    });
  }

  /** Opens (creating the file and tables when `create`); a missing file is an error otherwise. */
  open(create = true): this {
    if (this.#db) return this;
    if (!create && !existsSync(this.path)) throw new Error(`no audit database at ${this.path}`);
    mkdirSync(dirname(this.path), { recursive: true });
    const db = new DatabaseSync(this.path);
    try {
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      migrate(db);
      this.#insert = db.prepare(
        `INSERT INTO ${TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`,
      );
      this.#tip = db.prepare(`SELECT seq, hash FROM ${TABLE} ORDER BY seq DESC LIMIT 1`);
      this.#lastCheckpoint = db.prepare(
        `SELECT cut_seq AS seq, cut_hash AS hash FROM ${CHECKPOINTS} ORDER BY cut_seq DESC LIMIT 1`,
      );
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
    return this;
  }

  #open(): DatabaseSync {
    return this.open().#db!;
  }

  async write(rows: readonly AuditRow[], retry: boolean): Promise<void> {
    if (this.#threaded) {
      // As JSON text: copying one string to the thread costs less than cloning every row object.
      await this.#call({ op: 'write', rows: JSON.stringify(rows), retry });
      return;
    }
    const db = this.#open();
    db.exec('BEGIN IMMEDIATE');
    try {
      let todo = rows;
      if (retry) {
        const present = new Set(
          db
            .prepare(`SELECT id FROM ${TABLE} WHERE id IN (SELECT value FROM json_each(?))`)
            .all(JSON.stringify(rows.map((r) => r.id)))
            .map((r) => String(r.id)),
        );
        if (present.size > 0) todo = rows.filter((r) => !present.has(r.id));
      }
      const insert = this.#insert!;
      for (const r of link(todo, this.#tipPoint())) insert.run(...sqlValues(r));
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  }

  /** The point the next record follows: the last record, else the last purge's cut, else genesis. */
  #tipPoint(): ChainPoint {
    const row = this.#tip!.get() ?? this.#lastCheckpoint!.get();
    return row ? { seq: Number(row.seq), hash: String(row.hash) } : { seq: 0, hash: GENESIS };
  }

  async query(filter: AuditFilter, opts: QueryOptions): Promise<StoredRecord[]> {
    const w = whereClause(
      filter,
      this.#privacy,
      () => '?',
      (ms) => ms,
      cursorOf(opts),
    );
    const order = (opts.order ?? 'desc') === 'desc' ? 'DESC' : 'ASC';
    return this.#open()
      .prepare(`SELECT * FROM ${TABLE} ${w.sql} ORDER BY seq ${order} LIMIT ?`)
      .all(...(w.values as SQLInputValue[]), opts.limit)
      .map(fromDbRow);
  }

  records(filter: AuditFilter): AsyncIterable<StoredRecord> {
    return pagedRecords(this, filter, PAGE);
  }

  async verify(range: { since?: number; until?: number }): Promise<VerifyResult> {
    const db = this.#open();
    const lo = scalar(
      db,
      `SELECT min(seq) AS v FROM ${TABLE}${range.since === undefined ? '' : ' WHERE ts >= ?'}`,
      range.since,
    );
    const hi = scalar(
      db,
      `SELECT max(seq) AS v FROM ${TABLE}${range.until === undefined ? '' : ' WHERE ts <= ?'}`,
      range.until,
    );
    const db2 = db;
    async function* inRange(): AsyncIterable<StoredRecord> {
      if (lo === undefined || hi === undefined || hi < lo) return;
      const stmt = db2.prepare(`SELECT * FROM ${TABLE} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`);
      let after = lo - 1;
      for (;;) {
        const page = stmt.all(after, hi, PAGE).map(fromDbRow);
        yield* page;
        if (page.length < PAGE) return;
        after = page[page.length - 1]!.seq;
      }
    }
    return verifyChain(inRange(), (first) => {
      const before = db.prepare(`SELECT seq, hash FROM ${TABLE} WHERE seq = ?`).get(first - 1);
      if (before) return { seq: Number(before.seq), hash: String(before.hash), kind: 'record' };
      const cp = db
        .prepare(`SELECT cut_seq AS seq, cut_hash AS hash FROM ${CHECKPOINTS} WHERE cut_seq = ?`)
        .get(first - 1);
      if (cp) return { seq: Number(cp.seq), hash: String(cp.hash), kind: 'checkpoint' };
      return first === 1 ? { seq: 0, hash: GENESIS, kind: 'genesis' } : undefined;
    });
  }

  async purge(now: number, retentionMs: number): Promise<PurgeResult> {
    if (this.#threaded) return (await this.#call({ op: 'purge', now, retentionMs })) as PurgeResult;
    const db = this.#open();
    const cutoff = now - retentionMs;
    const young = scalar(db, `SELECT min(seq) AS v FROM ${TABLE} WHERE ts >= ?`, cutoff);
    const cut = young === undefined ? scalar(db, `SELECT max(seq) AS v FROM ${TABLE}`) : young - 1;
    const result: PurgeResult = { deleted: 0, cut: undefined };
    if (cut === undefined) return result;
    for (;;) {
      const first = scalar(db, `SELECT min(seq) AS v FROM ${TABLE}`);
      if (first === undefined || first > cut) return result;
      const end = Math.min(cut, first + PURGE_CHUNK - 1);
      db.exec('BEGIN IMMEDIATE');
      try {
        const last = db
          .prepare(`SELECT seq, hash FROM ${TABLE} WHERE seq <= ? ORDER BY seq DESC LIMIT 1`)
          .get(end);
        if (!last) {
          db.exec('COMMIT');
          return result;
        }
        const point = { seq: Number(last.seq), hash: String(last.hash) };
        db.prepare(
          `INSERT OR REPLACE INTO ${CHECKPOINTS} (cut_seq, cut_hash, cut_at, cutoff) VALUES (?, ?, ?, ?)`,
        ).run(point.seq, point.hash, now, cutoff);
        const r = db.prepare(`DELETE FROM ${TABLE} WHERE seq <= ?`).run(point.seq);
        db.exec('COMMIT');
        result.deleted += Number(r.changes);
        result.cut = point;
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK');
        throw err;
      }
      await yieldToLoop(); // a long purge must not hold the event loop
    }
  }

  async close(): Promise<void> {
    const w = this.#worker;
    if (w) {
      await this.#call({ op: 'close' }).catch(() => undefined);
      this.#worker = undefined;
      await w.terminate();
    }
    this.#db?.close();
    this.#db = undefined;
  }
}

function migrate(db: DatabaseSync): void {
  const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0);
  if (version >= SCHEMA_VERSION) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (\n  ${columnDefinitions('sqlite')}\n)`);
    db.exec(`CREATE INDEX IF NOT EXISTS ${TABLE}_ts ON ${TABLE} (ts)`);
    db.exec(`CREATE INDEX IF NOT EXISTS ${TABLE}_user ON ${TABLE} (user_id, ts)`);
    db.exec(`CREATE INDEX IF NOT EXISTS ${TABLE}_tool ON ${TABLE} (tool_name, ts)`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${CHECKPOINTS} (
      cut_seq INTEGER PRIMARY KEY,
      cut_hash TEXT NOT NULL,
      cut_at INTEGER NOT NULL,
      cutoff INTEGER NOT NULL
    )`);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec('COMMIT');
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

function scalar(db: DatabaseSync, sql: string, param?: number): number | undefined {
  const row = param === undefined ? db.prepare(sql).get() : db.prepare(sql).get(param);
  const v = row?.v;
  return v === null || v === undefined ? undefined : Number(v);
}

/** A stored record's values in COLUMNS order, as SQLite binds them (booleans as 0/1). */
function sqlValues(r: StoredRecord): SQLInputValue[] {
  const out = new Array<SQLInputValue>(COLUMNS.length);
  for (let i = 0; i < COLUMNS.length; i++) {
    const v = (r as unknown as Record<string, unknown>)[COLUMNS[i]!];
    out[i] = typeof v === 'boolean' ? (v ? 1 : 0) : ((v ?? null) as SQLInputValue);
  }
  return out;
}
