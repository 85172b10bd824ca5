// The writer of one sink: a bounded in-memory queue filled on the request path (push: an array append),
// drained off it in batches by one loop; a failed batch is retried with backoff; while the sink is down or
// the queue overflows, records go to the sink's spool on disk, in order, and are replayed from there when
// it returns. Records that can be kept nowhere are counted, reported, and marked in the chain by a gap
// record once the sink accepts records again.

import type { Logger } from '../telemetry/logger.ts';
import type { SinkPrivacy } from './privacy.ts';
import { type AuditRow, newRecordId, PendingRecord } from './record.ts';
import type { Spool, SpoolBatch } from './spool.ts';
import type { AuditSink } from './store.ts';

/** Backoff between attempts of a failing sink: doubling from MIN to MAX, with jitter. */
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 5_000;

export interface WriterOptions {
  queueSize: number;
  batchSize: number;
  flushIntervalMs: number;
  spool: Spool;
  privacy: SinkPrivacy;
  logger: Logger;
  /** A record this sink could not keep (reported by the audit log, rate-limited). */
  onLost(sink: string, record: PendingRecord | AuditRow | undefined, count: number): void;
}

export interface SinkStats {
  name: string;
  type: string;
  /** ok: writing; retrying: the last attempt failed; spooling: records go through the spool. */
  state: 'ok' | 'retrying' | 'spooling';
  /** Records waiting in memory (queue + the batch being written or retried). */
  queueDepth: number;
  queueCapacity: number;
  /** Records waiting in the spool, and its size. */
  spooled: number;
  spoolBytes: number;
  /** Totals since start. */
  written: number;
  spooledTotal: number;
  dropped: number;
  failures: number;
  lastError: string | undefined;
  /** Epoch ms of the last successful write. */
  lastWriteAt: number | undefined;
}

interface MemoryBatch {
  rows: AuditRow[];
  /** Copied to the spool (first in it) when the writer switched to spooling while it was in flight. */
  spooled: boolean;
  attempts: number;
}

export class SinkWriter {
  readonly sink: AuditSink;
  readonly #o: WriterOptions;
  readonly #spool: Spool;
  #queue: PendingRecord[] = [];
  /** A batch taken from the queue, being written or waiting for a retry (only in memory). */
  #batch: MemoryBatch | undefined;
  #mode: 'direct' | 'spool' = 'direct';
  #signal: (() => void) | undefined;
  /** What the loop sleeps for: new work (any push wakes it), a batch to fill, or a backoff (close only). */
  #waiting: 'work' | 'batch' | 'backoff' | undefined;
  #moveScheduled = false;
  #mover: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  #closing = false;
  #closed = false;
  #failures = 0;
  #failingSince: number | undefined;
  /** Records lost since the last gap record: written as one record when the sink accepts again. */
  #gap: { count: number; from: number; to: number } | undefined;
  readonly #stats = { written: 0, spooledTotal: 0, dropped: 0, failures: 0 };
  #lastError: string | undefined;
  #lastWriteAt: number | undefined;

  constructor(sink: AuditSink, o: WriterOptions) {
    this.sink = sink;
    this.#o = o;
    this.#spool = o.spool;
  }

  /** Starts the loop; records a previous run left in the spool are replayed first. */
  start(): void {
    if (this.#loop) return;
    try {
      this.#spool.recover();
    } catch (err) {
      this.#o.logger.error(
        { sink: this.sink.name, spool: this.#spool.path, err: (err as Error).message },
        'audit spool unreadable: records it holds are not replayed',
      );
    }
    if (this.#spool.records > 0) {
      this.#enterSpoolMode();
      this.#o.logger.info(
        { sink: this.sink.name, records: this.#spool.records },
        'audit: replaying records spooled by an earlier run',
      );
    }
    this.#loop = this.#run();
  }

  /** On the request path: keeps the record (queue, or spool soon), or reports it lost. */
  push(rec: PendingRecord): boolean {
    let n = this.#queue.length;
    const cap = this.#o.queueSize;
    // Twice the queue within one turn of the event loop (the mover had no chance to run): spooled now,
    // here — rare, and better than losing records.
    if (n >= 2 * cap && !this.#closed) {
      this.#spoolQueue();
      n = this.#queue.length;
    }
    // Past the queue's size with no usable spool, records still wait in memory up to twice the size: that
    // headroom is for calls the `audit: required` check (admits) let through before the queue filled, so
    // that they are not served unaudited; admits() refuses new calls from the queue's size on.
    if (this.#closed || n >= 2 * cap) {
      this.#lose(rec);
      return false;
    }
    if (this.#gap) this.#pushGap();
    this.#queue.push(rec);
    if (n + 1 >= cap && !this.#moveScheduled) {
      // Overflow: to the spool soon (off this request), even while a batch is being written.
      this.#moveScheduled = true;
      setImmediate(() => {
        this.#moveScheduled = false;
        this.#spoolQueue();
      });
    }
    const w = this.#waiting;
    if (w !== undefined && (w === 'work' || (w === 'batch' && n + 1 >= this.#o.batchSize))) this.#wake();
    return true;
  }

  /** Whether a record pushed now would be kept (the `audit: required` check). */
  admits(): boolean {
    if (this.#closed) return false;
    const n = this.#queue.length;
    const cap = this.#o.queueSize;
    return n < cap || this.#spool.usable();
  }

  stats(): SinkStats {
    return {
      name: this.sink.name,
      type: this.sink.type,
      state: this.#mode === 'spool' ? 'spooling' : this.#failures > 0 ? 'retrying' : 'ok',
      queueDepth: this.#queue.length + (this.#batch && !this.#batch.spooled ? this.#batch.rows.length : 0),
      queueCapacity: this.#o.queueSize,
      spooled: this.#spool.records,
      spoolBytes: this.#spool.bytes,
      written: this.#stats.written,
      spooledTotal: this.#stats.spooledTotal,
      dropped: this.#stats.dropped,
      failures: this.#stats.failures,
      lastError: this.#lastError,
      lastWriteAt: this.#lastWriteAt,
    };
  }

  /** Resolves when everything queued before the call is written (tests, shutdown); false on timeout. */
  async drain(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.#queue.length > 0 || this.#batch || this.#spool.records > 0) {
      if (Date.now() > until) return false;
      if (this.#waiting !== 'backoff') this.#wake();
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /**
   * Stops: writes what is queued within `timeoutMs`; what the sink could not take by then goes to the
   * spool (replayed at the next start), or is counted lost when the spool cannot take it either.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#wake();
    const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    const outcome = await Promise.race([this.#loop?.then(() => 'done' as const), deadline]);
    this.#closed = true;
    clearInterval(this.#mover);
    // Not written in time: kept in the spool for the next run.
    const rows: AuditRow[] = [];
    if (this.#batch && !this.#batch.spooled) rows.push(...this.#batch.rows);
    for (const r of this.#queue) rows.push(this.#prepare(r));
    this.#queue = [];
    this.#batch = undefined;
    if (rows.length > 0) {
      if (this.#spool.append(rows)) this.#stats.spooledTotal += rows.length;
      else for (const r of rows) this.#lose(r);
    }
    if (outcome === 'timeout' && this.#spool.records > 0)
      this.#o.logger.warn(
        { sink: this.sink.name, spooled: this.#spool.records },
        'audit: sink not drained at shutdown; the spooled records are replayed at the next start',
      );
    this.#spool.close();
    await this.sink.close().catch(() => undefined);
  }

  #prepare(rec: PendingRecord): AuditRow {
    return this.#o.privacy.apply(rec.row());
  }

  #lose(rec: PendingRecord | AuditRow): void {
    this.#stats.dropped++;
    const ts = rec.ts;
    if (this.#gap) {
      this.#gap.count++;
      this.#gap.from = Math.min(this.#gap.from, ts);
      this.#gap.to = Math.max(this.#gap.to, ts);
    } else this.#gap = { count: 1, from: ts, to: ts };
    this.#o.onLost(this.sink.name, rec, 1);
  }

  /** The chain says where records were lost: one record for the whole gap, before the next kept one. */
  #pushGap(): void {
    const g = this.#gap!;
    this.#gap = undefined;
    const row: AuditRow = {
      id: newRecordId(),
      ts: Date.now(),
      user_id: null,
      agent_identity: null,
      tenant: null,
      mcp_server: null,
      route: '',
      mcp_method: 'gatehouse/audit_gap',
      tool_name: null,
      resource_uri: null,
      prompt_name: null,
      decision: 'allow',
      reason: `${g.count} audit record${g.count === 1 ? '' : 's'} lost (queue full, spool unavailable) for requests received between ${new Date(g.from).toISOString()} and ${new Date(g.to).toISOString()}`,
      outcome: 'gap',
      response_code: 0,
      jsonrpc_code: null,
      upstream_response_code: null,
      is_error: true,
      latency_ms: 0,
      upstream_latency_ms: null,
      request_bytes: null,
      response_bytes: null,
      session_id: null,
      request_id: null,
      rpc_id: null,
      trace_id: null,
      span_id: null,
      client_ip: null,
      user_agent: null,
      error_message: null,
      arguments: null,
      result: null,
    };
    this.#queue.push(new PendingRecord(row));
  }

  #wake(): void {
    const s = this.#signal;
    this.#signal = undefined;
    s?.();
  }

  /** Sleeps `ms`, or until woken (see #waiting; close wakes every sleep). */
  #sleep(ms: number, why: 'work' | 'batch' | 'backoff'): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#signal = undefined;
        this.#waiting = undefined;
        resolve();
      }, ms);
      this.#waiting = why;
      this.#signal = () => {
        clearTimeout(t);
        this.#waiting = undefined;
        resolve();
      };
    });
  }

  #enterSpoolMode(): void {
    if (this.#mode === 'spool') return;
    this.#mode = 'spool';
    // While spooling, the queue moves to disk continually (not only on overflow).
    this.#mover = setInterval(() => this.#spoolQueue(), Math.max(this.#o.flushIntervalMs, 10));
    this.#mover.unref();
  }

  #leaveSpoolMode(): void {
    this.#mode = 'direct';
    clearInterval(this.#mover);
    this.#mover = undefined;
  }

  /**
   * Moves the queue to the spool (entering spool mode). Entering it, a batch only in memory — being
   * written, or waiting for a retry — goes first, so that order is kept whatever its write's outcome.
   */
  #spoolQueue(): void {
    if (this.#closed) return;
    const moveBatch = this.#mode === 'direct' && this.#batch !== undefined && !this.#batch.spooled;
    if (this.#queue.length === 0 && !moveBatch) return;
    if (!this.#spool.usable()) return;
    const rows: AuditRow[] = moveBatch ? [...this.#batch!.rows] : [];
    const taken = this.#queue;
    for (const r of taken) rows.push(this.#prepare(r));
    this.#queue = [];
    if (!this.#spool.append(rows)) {
      this.#queue = taken.concat(this.#queue);
      return;
    }
    this.#stats.spooledTotal += taken.length;
    if (moveBatch) this.#batch!.spooled = true;
    this.#enterSpoolMode();
  }

  async #run(): Promise<void> {
    let batched = false;
    for (;;) {
      if (this.#closed) return;
      if (this.#mode === 'spool') this.#spoolQueue();
      let spoolBatch: SpoolBatch | undefined;
      if (!this.#batch) {
        spoolBatch = this.#readSpool();
        if (!spoolBatch) {
          if (this.#mode === 'spool') {
            // Caught up: what is still queued is now the oldest, written directly.
            this.#leaveSpoolMode();
            continue;
          }
          if (this.#queue.length === 0) {
            if (this.#closing) return;
            await this.#sleep(60_000, 'work');
            continue;
          }
          // Let a batch build up (unless one is full, or the writer is closing).
          if (!batched && !this.#closing && this.#queue.length < this.#o.batchSize) {
            batched = true;
            await this.#sleep(this.#o.flushIntervalMs, 'batch');
            continue;
          }
          batched = false;
          const take = this.#queue.splice(0, this.#o.batchSize);
          const rows = new Array<AuditRow>(take.length);
          for (let i = 0; i < take.length; i++) rows[i] = this.#prepare(take[i]!);
          this.#batch = { rows, spooled: false, attempts: 0 };
        }
      }
      const batch = this.#batch;
      const rows = batch ? batch.rows : spoolBatch!.rows;
      try {
        if (rows.length > 0) await this.sink.write(rows, batch ? batch.attempts > 0 : true);
        this.#written(rows.length);
        if (batch) {
          this.#batch = undefined;
          // It was also copied to the spool (first): skip it there.
          if (batch.spooled) {
            const copy = this.#spool.read(batch.rows.length);
            if (copy) this.#spool.consume(copy);
          }
        } else {
          this.#spool.consume(spoolBatch!);
          for (let i = 0; i < spoolBatch!.corrupt; i++) this.#lose({ ts: Date.now() } as AuditRow);
        }
      } catch (err) {
        this.#failed(err);
        if (batch) {
          batch.attempts++;
          if (!batch.spooled) this.#spoolQueue(); // keeps it (first) and the queue on disk, if it can
          if (batch.spooled) this.#batch = undefined; // the spool has it now
        }
        if (this.#closing) return;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.#failures - 1, 16));
        await this.#sleep(delay / 2 + Math.random() * (delay / 2), 'backoff');
      }
    }
  }

  #readSpool(): SpoolBatch | undefined {
    try {
      return this.#spool.read(this.#o.batchSize);
    } catch (err) {
      this.#o.logger.error(
        { sink: this.sink.name, spool: this.#spool.path, err: (err as Error).message },
        'audit spool unreadable',
      );
      return undefined;
    }
  }

  #written(n: number): void {
    this.#stats.written += n;
    this.#lastWriteAt = Date.now();
    if (this.#failures > 0) {
      this.#o.logger.info(
        {
          sink: this.sink.name,
          downMs: this.#failingSince === undefined ? undefined : Date.now() - this.#failingSince,
          spooled: this.#spool.records,
        },
        'audit sink writing again',
      );
    }
    this.#failures = 0;
    this.#failingSince = undefined;
  }

  #failed(err: unknown): void {
    this.#stats.failures++;
    this.#lastError = err instanceof Error ? err.message : String(err);
    if (this.#failures++ === 0) {
      this.#failingSince = Date.now();
      this.#o.logger.error(
        { sink: this.sink.name, err: this.#lastError },
        'audit sink failing: records are retried and spooled until it is back',
      );
    }
  }
}
