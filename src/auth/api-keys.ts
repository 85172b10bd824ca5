// API keys for agents: the gateway keeps only a hash of each key, with the agent identity, groups and
// roles the key stands for — in SQLite (built into Node, the default) or PostgreSQL (api-keys-pg.ts).
// Verifications are cached briefly so that the hot path touches the store only on a miss.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { GatehouseError, GatewayCode } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';

export interface ApiKeyRecord {
  name: string;
  agent: string;
  groups: string[];
  /** What the key may do besides calling routes: `admin` opens the admin API. */
  roles: string[];
  createdAt: number;
  expiresAt: number | undefined;
  revokedAt: number | undefined;
}

export interface NewApiKey {
  name: string;
  /** Default: the name. */
  agent?: string | undefined;
  groups: string[];
  roles?: string[] | undefined;
  expiresAt?: number | undefined;
  now: number;
}

/**
 * Where keys are kept. SQLite answers synchronously, PostgreSQL with promises: callers off the hot path
 * simply await; verify() may answer either way (a cache hit is always synchronous). A store that cannot
 * answer throws (or rejects): the caller refuses the request, never allows it.
 */
export interface KeyStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Creates a key and returns it: the only time it is ever visible. */
  create(key: NewApiKey): string | Promise<string>;
  /** Every key (revoked and expired ones too), oldest first. Never the keys or their hashes. */
  list(): ApiKeyRecord[] | Promise<ApiKeyRecord[]>;
  /** Revokes a key by name; false when there is no active key of that name. */
  revoke(name: string, now: number): boolean | Promise<boolean>;
  /** The key's record when it is valid now (not revoked, not expired), else undefined. */
  verify(key: string, now: number): ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined>;
  close(): void | Promise<void>;
}

export interface KeyStoreOptions {
  /** How long a verification (positive or negative) is reused; 0 disables the cache. */
  cacheTtlMs: number;
  /** At most this many verifications of each kind (found / unknown) are cached. */
  cacheMax?: number;
  logger?: Logger | undefined;
}

export const KEY_PREFIX = 'ghk_';
const CACHE_MAX = 10_000;

/** A second key with a name in use. */
export class KeyExistsError extends RangeError {
  readonly code = 'ERR_KEY_EXISTS';
  constructor(name: string) {
    super(`a key named "${name}" exists already`);
    this.name = 'KeyExistsError';
  }
}

/** The store cannot be reached or read: callers answer 503, never allow. */
export function keyStoreUnavailable(cause?: unknown): GatehouseError {
  const e = new GatehouseError(
    'ERR_KEY_STORE_UNAVAILABLE',
    GatewayCode.UpstreamUnavailable,
    503,
    'Service Unavailable: the API key store is unavailable; retry shortly',
  );
  // Kept for the operator (logs, the CLI), never sent to callers.
  if (cause !== undefined) e.cause = cause;
  return e;
}

export const hashKey = (key: string): string => createHash('sha256').update(key).digest('base64url');
export const generateKey = (): string => KEY_PREFIX + randomBytes(32).toString('base64url');

const NAME = /^[^\p{Cc}]{1,128}$/u;
const ROLE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** Refuses a key that could not be listed, revoked by name or matched by an ACL (RangeError, precise). */
export function checkNewKey(k: Pick<NewApiKey, 'name' | 'agent' | 'groups' | 'roles'>): void {
  if (!NAME.test(k.name))
    throw new RangeError('name must be 1 to 128 characters, without control characters');
  if (k.agent !== undefined && !NAME.test(k.agent))
    throw new RangeError('agent must be 1 to 128 characters, without control characters');
  for (const g of k.groups) {
    if (!NAME.test(g))
      throw new RangeError(
        `group ${JSON.stringify(g)} must be 1 to 128 characters, without control characters`,
      );
  }
  for (const r of k.roles ?? []) {
    if (!ROLE.test(r))
      throw new RangeError(
        `role ${JSON.stringify(r)} must be 1 to 64 letters, digits, '.', '_', ':' or '-' (e.g. admin)`,
      );
  }
}

/** The record when it is valid at `now`. */
export function validAt(record: ApiKeyRecord | undefined, now: number): ApiKeyRecord | undefined {
  if (!record || record.revokedAt !== undefined) return undefined;
  if (record.expiresAt !== undefined && record.expiresAt <= now) return undefined;
  return record;
}

/**
 * Verifications by key hash, each trusted until its ttl runs out. Found and unknown keys are kept apart
 * and each side is bounded (oldest first): a flood of junk keys can only evict other junk.
 */
export class VerifyCache {
  readonly #ttl: number;
  readonly #max: number;
  readonly #found = new Map<string, { record: ApiKeyRecord; until: number }>();
  readonly #unknown = new Map<string, number>();

  constructor(ttlMs: number, max = CACHE_MAX) {
    this.#ttl = ttlMs;
    this.#max = max;
  }

  /** The cached record, `null` for a key known not to exist, undefined on a miss. */
  get(hash: string, now: number): ApiKeyRecord | null | undefined {
    const found = this.#found.get(hash);
    if (found && found.until > now) return found.record;
    const unknownUntil = this.#unknown.get(hash);
    if (unknownUntil !== undefined && unknownUntil > now) return null;
    return undefined;
  }

  set(hash: string, record: ApiKeyRecord | undefined, now: number): void {
    if (this.#ttl <= 0) return;
    const until = now + this.#ttl;
    if (record) bounded(this.#found, this.#max, hash, { record, until });
    else bounded(this.#unknown, this.#max, hash, until);
  }

  clear(): void {
    this.#found.clear();
    this.#unknown.clear();
  }

  get size(): { found: number; unknown: number } {
    return { found: this.#found.size, unknown: this.#unknown.size };
  }
}

function bounded<V>(map: Map<string, V>, max: number, key: string, value: V): void {
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** True when `api_keys.store` names a PostgreSQL database rather than a SQLite file. */
export const isPostgresUrl = (store: string): boolean => /^postgres(ql)?:\/\//i.test(store);

/** Opens the store `api_keys.store` names: a postgres:// URL, else a SQLite file relative to `baseDir`. */
export async function openKeyStore(store: string, baseDir: string, opts: KeyStoreOptions): Promise<KeyStore> {
  if (isPostgresUrl(store)) {
    // Loaded only when used: a gateway on SQLite never loads the PostgreSQL client.
    const { PgApiKeyStore } = await import('./api-keys-pg.ts');
    return new PgApiKeyStore(store, opts);
  }
  return new ApiKeyStore(resolve(baseDir, store), opts);
}

/** The SQLite store: synchronous, so a cache miss costs one indexed read and no promise. */
export class ApiKeyStore implements KeyStore {
  readonly kind = 'sqlite';
  readonly #db: DatabaseSync;
  readonly #byHash: StatementSync;
  readonly #cache: VerifyCache;

  constructor(path: string, opts: KeyStoreOptions = { cacheTtlMs: 10_000 }) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec(`PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS api_keys (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL,
        groups TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        roles TEXT NOT NULL DEFAULT '[]'
      )`);
    // Files made before keys had roles get the column (existing keys have none).
    const columns = this.#db.prepare('PRAGMA table_info(api_keys)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'roles'))
      this.#db.exec(`ALTER TABLE api_keys ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'`);
    this.#byHash = this.#db.prepare('SELECT * FROM api_keys WHERE hash = ?');
    this.#cache = new VerifyCache(opts.cacheTtlMs, opts.cacheMax);
  }

  create(k: NewApiKey): string {
    checkNewKey(k);
    const key = generateKey();
    try {
      this.#db
        .prepare(
          'INSERT INTO api_keys (name, hash, agent, groups, roles, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          k.name,
          hashKey(key),
          k.agent ?? k.name,
          JSON.stringify(k.groups),
          JSON.stringify(k.roles ?? []),
          k.now,
          k.expiresAt ?? null,
        );
    } catch (err) {
      if (String((err as Error).message).includes('UNIQUE')) throw new KeyExistsError(k.name);
      throw err;
    }
    return key;
  }

  list(): ApiKeyRecord[] {
    return (
      this.#db.prepare('SELECT * FROM api_keys ORDER BY created_at, name').all() as Record<string, unknown>[]
    ).map(toRecord);
  }

  revoke(name: string, now: number): boolean {
    const r = this.#db
      .prepare('UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL')
      .run(now, name);
    this.#cache.clear();
    return Number(r.changes) > 0;
  }

  verify(key: string, now: number): ApiKeyRecord | undefined {
    if (!key.startsWith(KEY_PREFIX)) return undefined;
    const h = hashKey(key);
    const hit = this.#cache.get(h, now);
    if (hit !== undefined) return validAt(hit ?? undefined, now);
    const row = this.#byHash.get(h) as Record<string, unknown> | undefined;
    const record = row ? toRecord(row) : undefined;
    this.#cache.set(h, record, now);
    return validAt(record, now);
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

function toRecord(row: Record<string, unknown>): ApiKeyRecord {
  return {
    name: String(row.name),
    agent: String(row.agent),
    groups: JSON.parse(String(row.groups)) as string[],
    roles: JSON.parse(String(row.roles ?? '[]')) as string[],
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
  };
}
