// API keys in PostgreSQL (api_keys.store: postgres://…), for gateways that scale out: every instance
// reads the same keys. The table is created when absent; it holds hashes only. Verifications are cached
// for api_keys.cache_ttl, concurrent misses for one key share one query, and an unreachable database
// makes verify() reject — the caller answers 503, never allows.

import pg from 'pg';
import type { Logger } from '../telemetry/logger.ts';
import {
  type ApiKeyRecord,
  checkNewKey,
  generateKey,
  hashKey,
  KEY_PREFIX,
  KeyExistsError,
  type KeyStore,
  type KeyStoreOptions,
  keyStoreUnavailable,
  type NewApiKey,
  VerifyCache,
  validAt,
} from './api-keys.ts';

export const PG_KEYS_TABLE = 'gatehouse_api_keys';

/** How long a connection attempt or a query may take before the store counts as unavailable. */
const TIMEOUT_MS = 3_000;

const COLUMNS = 'name, agent, groups, roles, created_at, expires_at, revoked_at';

export class PgApiKeyStore implements KeyStore {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #cache: VerifyCache;
  readonly #logger: Logger | undefined;
  /** Misses in flight, by hash: a burst of requests with one uncached key costs one query. */
  readonly #pending = new Map<string, Promise<ApiKeyRecord | undefined>>();
  #schema: Promise<void> | undefined;
  #failing = false;
  #closed = false;

  constructor(url: string, opts: KeyStoreOptions) {
    this.#pool = new pg.Pool({
      connectionString: url,
      max: 10,
      connectionTimeoutMillis: TIMEOUT_MS,
      query_timeout: TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'gatehouse',
    });
    // An idle connection that breaks (database restarted, network cut) must not crash the process.
    this.#pool.on('error', (err) => this.#failed(err));
    this.#cache = new VerifyCache(opts.cacheTtlMs, opts.cacheMax);
    this.#logger = opts.logger;
  }

  async create(k: NewApiKey): Promise<string> {
    checkNewKey(k);
    const key = generateKey();
    try {
      await this.#query(
        `INSERT INTO ${PG_KEYS_TABLE} (name, hash, agent, groups, roles, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          k.name,
          hashKey(key),
          k.agent ?? k.name,
          k.groups,
          k.roles ?? [],
          new Date(k.now),
          k.expiresAt === undefined ? null : new Date(k.expiresAt),
        ],
      );
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new KeyExistsError(k.name);
      throw err;
    }
    return key;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const r = await this.#query(`SELECT ${COLUMNS} FROM ${PG_KEYS_TABLE} ORDER BY created_at, name`, []);
    return r.rows.map(toRecord);
  }

  async revoke(name: string, now: number): Promise<boolean> {
    const r = await this.#query(
      `UPDATE ${PG_KEYS_TABLE} SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL`,
      [new Date(now), name],
    );
    this.#cache.clear();
    return (r.rowCount ?? 0) > 0;
  }

  verify(key: string, now: number): ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined> {
    if (!key.startsWith(KEY_PREFIX)) return undefined;
    const h = hashKey(key);
    const hit = this.#cache.get(h, now);
    if (hit !== undefined) return validAt(hit ?? undefined, now);
    let pending = this.#pending.get(h);
    if (!pending) {
      pending = this.#lookup(h, now).finally(() => this.#pending.delete(h));
      this.#pending.set(h, pending);
    }
    return pending.then((record) => validAt(record, now));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async #lookup(hash: string, now: number): Promise<ApiKeyRecord | undefined> {
    const r = await this.#query(`SELECT ${COLUMNS} FROM ${PG_KEYS_TABLE} WHERE hash = $1`, [hash]);
    const record = r.rows[0] ? toRecord(r.rows[0]) : undefined;
    this.#cache.set(hash, record, now);
    return record;
  }

  /** One query, after the table exists; any failure to reach the database becomes "unavailable". */
  async #query(text: string, values: unknown[]): Promise<pg.QueryResult<Record<string, unknown>>> {
    if (this.#closed) throw keyStoreUnavailable();
    try {
      await this.#ensureTable();
      const r = await this.#pool.query<Record<string, unknown>>(text, values);
      if (this.#failing) {
        this.#failing = false;
        this.#logger?.info('API key store (PostgreSQL) reachable again');
      }
      return r;
    } catch (err) {
      // A constraint the caller can act on is not an outage.
      if ((err as { code?: string }).code === '23505') throw err;
      this.#failed(err);
      throw keyStoreUnavailable(err);
    }
  }

  #ensureTable(): Promise<void> {
    this.#schema ??= this.#createTable().catch((err: unknown) => {
      this.#schema = undefined; // try again on the next request
      throw err;
    });
    return this.#schema;
  }

  async #createTable(): Promise<void> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      // Instances starting together must not race on CREATE TABLE (it is not atomic in PostgreSQL).
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [PG_KEYS_TABLE]);
      await client.query(`CREATE TABLE IF NOT EXISTS ${PG_KEYS_TABLE} (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL,
        groups TEXT[] NOT NULL,
        roles TEXT[] NOT NULL DEFAULT '{}',
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ
      )`);
      await client.query('COMMIT');
    } catch (err) {
      broken = err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Logs an outage once when it starts (and its recovery once, in #query), not once per request. */
  #failed(err: unknown): void {
    if (this.#failing || this.#closed) return;
    this.#failing = true;
    this.#logger?.error(
      { err: err instanceof Error ? err.message : String(err) },
      'API key store (PostgreSQL) unavailable: requests with API keys get 503 until it is back',
    );
  }
}

function toRecord(row: Record<string, unknown>): ApiKeyRecord {
  const time = (v: unknown) => (v === null || v === undefined ? undefined : (v as Date).getTime());
  return {
    name: String(row.name),
    agent: String(row.agent),
    groups: row.groups as string[],
    roles: row.roles as string[],
    createdAt: (row.created_at as Date).getTime(),
    expiresAt: time(row.expires_at),
    revokedAt: time(row.revoked_at),
  };
}
