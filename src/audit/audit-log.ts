// The audit log of a running gateway: an exchange sink that turns each event into one record and hands it
// to every sink's writer (the request path does no more), answers whether a route may serve a call now
// (`audit: required`), reports lost records, runs the retention purge, and exposes stats for metrics.

import { resolve } from 'node:path';
import type { Config, RouteConfig, SecretRef } from '../config/schema.ts';
import { GatehouseError, GatewayCode } from '../mcp/errors.ts';
import type { ExchangeEvent, ExchangeSink } from '../telemetry/events.ts';
import type { Logger } from '../telemetry/logger.ts';
import { payloadPolicy, type SinkPrivacy, sinkPrivacy } from './privacy.ts';
import { type AuditRow, type PayloadPolicy, PendingRecord, recordOf } from './record.ts';
import { JsonlAuditSink } from './sinks/jsonl.ts';
import { PgAuditStore } from './sinks/postgres.ts';
import { SqliteAuditStore } from './sinks/sqlite.ts';
import { StdoutAuditSink } from './sinks/stdout.ts';
import { Spool } from './spool.ts';
import type { AuditSink, AuditStore } from './store.ts';
import { type SinkStats, SinkWriter } from './writer.ts';

export type AuditConfig = Config['audit'];
export type AuditSinkConfig = AuditConfig['sinks'][number];

/** Resolves a secret reference of the config (load.ts's resolveSecret, bound to the config's place). */
export type SecretResolver = (ref: SecretRef) => Promise<string>;

export interface AuditStats {
  /** Whether every sink can keep a record now (else `audit: required` routes answer 503). */
  accepting: boolean;
  /** Records lost by any sink since start. */
  lost: number;
  sinks: SinkStats[];
}

interface RoutePolicy {
  required: boolean;
  payloads: PayloadPolicy | undefined;
}

/** How often lost records are reported in the log (each one is counted at once). */
const LOSS_REPORT_MS = 1_000;
/** Records described one by one in each loss report; the rest are counted. */
const LOSS_DETAIL = 20;

export interface OpenedSink {
  sink: AuditSink;
  /** The store reading it back (SQLite, PostgreSQL), when it has one. */
  store: AuditStore | undefined;
  /** Retention purge of this sink, when it has one. */
  purge: ((now: number) => Promise<{ deleted: number }>) | undefined;
  retentionMs: number | undefined;
  /** How the sink stores records (pseudonyms, omitted fields); applied before records reach the disk. */
  privacy: SinkPrivacy;
}

/** Builds one sink (and its store) from its config. Nothing is opened or connected yet. */
export async function openSink(
  c: AuditSinkConfig,
  baseDir: string,
  secret: SecretResolver,
  /** A gateway writes SQLite from a worker thread; the CLI reads in its own. */
  threaded = false,
): Promise<OpenedSink> {
  const privacy = sinkPrivacy({
    pseudonymize: c.pseudonymize
      ? { key: await secret(c.pseudonymize.key), fields: c.pseudonymize.fields }
      : undefined,
    omit: c.omit,
  });
  switch (c.type) {
    case 'sqlite': {
      const s = new SqliteAuditStore(c.name, resolve(baseDir, c.path), privacy, { threaded });
      return {
        sink: s,
        store: s,
        purge: (now) => s.purge(now, c.retention),
        retentionMs: c.retention,
        privacy,
      };
    }
    case 'postgres': {
      const s = new PgAuditStore({
        name: c.name,
        url: await secret(c.url),
        schema: c.schema,
        table: c.table,
        privacy,
      });
      return {
        sink: s,
        store: s,
        purge: (now) => s.purge(now, c.retention),
        retentionMs: c.retention,
        privacy,
      };
    }
    case 'jsonl': {
      const s = new JsonlAuditSink(c.name, resolve(baseDir, c.path), c.max_size, c.keep);
      return {
        sink: s,
        store: undefined,
        purge: (now) => s.purge(now, c.retention),
        retentionMs: c.retention,
        privacy,
      };
    }
    case 'stdout':
      return {
        sink: new StdoutAuditSink(c.name),
        store: undefined,
        purge: undefined,
        retentionMs: undefined,
        privacy,
      };
  }
}

export interface AuditLogOptions {
  config: AuditConfig;
  routes: readonly RouteConfig[];
  baseDir: string;
  resolveSecret: SecretResolver;
  logger: Logger;
}

export class AuditLog implements ExchangeSink {
  readonly #writers: SinkWriter[];
  readonly #sinks: OpenedSink[];
  readonly #routes: Map<string, RoutePolicy>;
  readonly #logger: Logger;
  readonly #purgeIntervalMs: number;
  #purgeTimer: NodeJS.Timeout | undefined;
  #purging: Promise<void> | undefined;
  #lossTimer: NodeJS.Timeout | undefined;
  #lost = 0;
  readonly #lossReport = new Map<string, { count: number; records: (PendingRecord | AuditRow)[] }>();
  #started = false;

  private constructor(o: AuditLogOptions, sinks: OpenedSink[]) {
    const c = o.config;
    this.#logger = o.logger;
    this.#sinks = sinks;
    this.#purgeIntervalMs = c.purge_interval;
    this.#routes = new Map(
      o.routes.map((r) => [
        r.path,
        {
          required: r.audit !== 'best_effort',
          payloads: r.audit_payloads
            ? payloadPolicy({
                arguments: r.audit_payloads.arguments,
                results: r.audit_payloads.results,
                redactPaths: r.audit_payloads.redact_paths,
                redactFields: c.redact_fields,
                maxBytes: c.max_payload_bytes,
              })
            : undefined,
        },
      ]),
    );
    const spoolDir = resolve(o.baseDir, c.spool.dir);
    this.#writers = sinks.map(
      (s) =>
        new SinkWriter(s.sink, {
          queueSize: c.queue_size,
          batchSize: c.batch_size,
          flushIntervalMs: c.flush_interval,
          spool: new Spool(resolve(spoolDir, `${s.sink.name}.spool`), c.spool.max_size),
          privacy: s.privacy,
          logger: o.logger,
          onLost: (sink, rec) => this.#onLost(sink, rec),
        }),
    );
  }

  static async create(o: AuditLogOptions): Promise<AuditLog> {
    const sinks: OpenedSink[] = [];
    for (const c of o.config.sinks) sinks.push(await openSink(c, o.baseDir, o.resolveSecret, true));
    return new AuditLog(o, sinks);
  }

  // ---- the request path -------------------------------------------------------------------------

  emit(e: ExchangeEvent): void {
    const policy = this.#routes.get(e.route);
    const rec = recordOf(e, policy?.payloads);
    for (const w of this.#writers) w.push(rec);
  }

  /**
   * The refusal for a new call on `route` while records cannot be kept (every sink must be able to keep
   * one: queue room, or a usable spool); undefined when the call may proceed. best_effort routes always may.
   */
  refusal(route: string): GatehouseError | undefined {
    if (this.#routes.get(route)?.required === false) return undefined;
    for (const w of this.#writers) {
      if (!w.admits())
        return new GatehouseError(
          'ERR_AUDIT_UNAVAILABLE',
          GatewayCode.Overloaded,
          503,
          `Service Unavailable: audit records cannot be kept right now (sink "${w.sink.name}" is behind and its spool is unavailable); this route requires audit, so calls are refused until it recovers — retry later`,
        );
    }
    return undefined;
  }

  // ---- operations -------------------------------------------------------------------------------

  stats(): AuditStats {
    const sinks = this.#writers.map((w) => w.stats());
    return { accepting: this.#writers.every((w) => w.admits()), lost: this.#lost, sinks };
  }

  /** The store of a sink that can be read back: by name, else the first SQLite or PostgreSQL sink. */
  store(name?: string): AuditStore | undefined {
    const s =
      name === undefined ? this.#sinks.find((x) => x.store) : this.#sinks.find((x) => x.sink.name === name);
    return s?.store;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const w of this.#writers) w.start();
    if (this.#sinks.some((s) => s.purge)) {
      this.#purgeTimer = setInterval(() => void this.purge(), this.#purgeIntervalMs);
      this.#purgeTimer.unref();
      // The first purge soon after start (an instance that restarts often still purges).
      setTimeout(() => void this.purge(), Math.min(this.#purgeIntervalMs, 10_000)).unref();
    }
  }

  /** Runs the retention purge of every sink now (one run at a time); failures are logged. */
  purge(now = Date.now()): Promise<void> {
    this.#purging ??= (async () => {
      for (const s of this.#sinks) {
        if (!s.purge) continue;
        try {
          const r = await s.purge(now);
          if (r.deleted > 0)
            this.#logger.info(
              { sink: s.sink.name, deleted: r.deleted, retentionMs: s.retentionMs },
              'audit retention purge',
            );
        } catch (err) {
          this.#logger.warn(
            { sink: s.sink.name, err: (err as Error).message },
            'audit retention purge failed',
          );
        }
      }
    })().finally(() => {
      this.#purging = undefined;
    });
    return this.#purging;
  }

  /** Waits until every record emitted so far is written (tests, benchmarks); false on timeout. */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    const results = await Promise.all(this.#writers.map((w) => w.drain(timeoutMs)));
    return results.every(Boolean);
  }

  /** Writes what is queued (within `timeoutMs`; the rest is spooled for the next start) and closes. */
  async stop(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.#purgeTimer);
    await this.#purging?.catch(() => undefined);
    await Promise.all(this.#writers.map((w) => w.close(timeoutMs)));
    this.#reportLosses();
    clearTimeout(this.#lossTimer);
  }

  // ---- losses -----------------------------------------------------------------------------------

  #onLost(sink: string, rec: PendingRecord | AuditRow | undefined): void {
    this.#lost++;
    let r = this.#lossReport.get(sink);
    if (!r) {
      r = { count: 0, records: [] };
      this.#lossReport.set(sink, r);
    }
    r.count++;
    if (rec && r.records.length < LOSS_DETAIL) r.records.push(rec);
    if (!this.#lossTimer) {
      this.#lossTimer = setTimeout(() => this.#reportLosses(), LOSS_REPORT_MS);
      this.#lossTimer.unref();
    }
  }

  #reportLosses(): void {
    this.#lossTimer = undefined;
    for (const [sink, r] of this.#lossReport) {
      const records = r.records.map((x) => {
        const row = x instanceof PendingRecord ? x.row() : x;
        return {
          id: row.id,
          ts: row.ts === undefined ? undefined : new Date(row.ts).toISOString(),
          route: row.route,
          method: row.mcp_method,
          target: row.tool_name ?? row.prompt_name ?? row.resource_uri,
          // No user id: a sink may keep only pseudonyms, and a log line must not undo that.
          decision: row.decision,
        };
      });
      this.#logger.error(
        { sink, lost: r.count, totalLost: this.#lost, records },
        `audit: ${r.count} record${r.count === 1 ? '' : 's'} could not be kept (queue full, spool unavailable)`,
      );
    }
    this.#lossReport.clear();
  }
}
