// API keys for agents: the gateway keeps only a hash of each key (SQLite, built into Node), with the
// agent identity and groups the key stands for. Verified keys are cached briefly so that the hot path
// touches the database only on a miss.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';

export interface ApiKeyRecord {
  name: string;
  agent: string;
  groups: string[];
  createdAt: number;
  expiresAt: number | undefined;
  revokedAt: number | undefined;
}

/** How long a verification (positive or negative) is trusted before the database is asked again. */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
const PREFIX = 'ghk_';

const hash = (key: string) => createHash('sha256').update(key).digest('base64url');

export class ApiKeyStore {
  readonly #db: DatabaseSync;
  readonly #byHash: StatementSync;
  readonly #cache = new Map<string, { record: ApiKeyRecord | undefined; until: number }>();

  constructor(path: string) {
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
        revoked_at INTEGER
      )`);
    this.#byHash = this.#db.prepare('SELECT * FROM api_keys WHERE hash = ?');
  }

  /** Creates a key and returns it: the only time it is ever visible. */
  create(opts: { name: string; agent?: string; groups: string[]; expiresAt?: number; now: number }): string {
    const key = PREFIX + randomBytes(32).toString('base64url');
    try {
      this.#db
        .prepare(
          'INSERT INTO api_keys (name, hash, agent, groups, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(
          opts.name,
          hash(key),
          opts.agent ?? opts.name,
          JSON.stringify(opts.groups),
          opts.now,
          opts.expiresAt ?? null,
        );
    } catch (err) {
      if (String((err as Error).message).includes('UNIQUE'))
        throw new RangeError(`a key named "${opts.name}" exists already`);
      throw err;
    }
    return key;
  }

  list(): ApiKeyRecord[] {
    return (
      this.#db.prepare('SELECT * FROM api_keys ORDER BY created_at').all() as Record<string, unknown>[]
    ).map(toRecord);
  }

  /** Revokes a key by name; false when there is none. */
  revoke(name: string, now: number): boolean {
    const r = this.#db
      .prepare('UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL')
      .run(now, name);
    this.#cache.clear();
    return Number(r.changes) > 0;
  }

  /** The key's record when it is valid now (not revoked, not expired), else undefined. */
  verify(key: string, now: number): ApiKeyRecord | undefined {
    if (!key.startsWith(PREFIX)) return undefined;
    const h = hash(key);
    const hit = this.#cache.get(h);
    let record: ApiKeyRecord | undefined;
    if (hit && hit.until > now) record = hit.record;
    else {
      const row = this.#byHash.get(h) as Record<string, unknown> | undefined;
      record = row ? toRecord(row) : undefined;
      // Only keys that exist are cached (junk keys cannot flush the good ones); the oldest goes first.
      if (record) {
        if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
        this.#cache.set(h, { record, until: now + CACHE_MS });
      }
    }
    if (!record || record.revokedAt !== undefined) return undefined;
    if (record.expiresAt !== undefined && record.expiresAt <= now) return undefined;
    return record;
  }

  close(): void {
    this.#db.close();
  }
}

function toRecord(row: Record<string, unknown>): ApiKeyRecord {
  return {
    name: String(row.name),
    agent: String(row.agent),
    groups: JSON.parse(String(row.groups)) as string[],
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
  };
}
