// `gatehouse keys create|list|revoke`: API keys for agents. The key is printed once, at creation; the
// gateway keeps only its hash, in api_keys.store (a SQLite file next to the config, or PostgreSQL).

import { type KeyStore, openKeyStore } from '../auth/api-keys.ts';
import { loadConfigFile } from '../config/load.ts';
import { parseDuration } from '../config/units.ts';
import { GatehouseError } from '../mcp/errors.ts';
import { configPath } from './options.ts';

async function withStore<T>(
  config: string | undefined,
  use: (store: KeyStore, cacheTtlMs: number) => Promise<T>,
): Promise<T> {
  const loaded = await loadConfigFile(configPath(config));
  const { store, cache_ttl } = loaded.config.api_keys;
  // No cache: every command reads the store itself.
  const keys = await openKeyStore(store, loaded.baseDir, { cacheTtlMs: 0 });
  try {
    return await use(keys, cache_ttl);
  } catch (err) {
    // On the command line, say why the store is unavailable (a gateway's callers only get the 503).
    if (err instanceof GatehouseError && err.cause instanceof Error)
      throw new Error(`${err.message} (${keys.kind}: ${err.cause.message})`);
    throw err;
  } finally {
    await keys.close();
  }
}

export async function createKey(flags: {
  config?: string;
  name: string;
  group?: string[];
  role?: string[];
  agent?: string;
  expires?: string;
}): Promise<void> {
  await withStore(flags.config, async (store) => {
    const now = Date.now();
    let expiresAt: number | undefined;
    if (flags.expires !== undefined) {
      const ms = parseDuration(flags.expires);
      if (ms === undefined || ms === 0)
        throw new RangeError(`invalid --expires ${JSON.stringify(flags.expires)}: use e.g. 30d, 12h`);
      expiresAt = now + ms;
    }
    const key = await store.create({
      name: flags.name,
      groups: flags.group ?? [],
      roles: flags.role ?? [],
      now,
      agent: flags.agent,
      expiresAt,
    });
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `key "${flags.name}" created${expiresAt ? `, expires ${new Date(expiresAt).toISOString()}` : ''}; it is shown only now\n`,
    );
  });
}

export async function listKeys(flags: { config?: string }): Promise<void> {
  await withStore(flags.config, async (store) => {
    const now = Date.now();
    for (const k of await store.list()) {
      const state =
        k.revokedAt !== undefined
          ? 'revoked'
          : k.expiresAt !== undefined && k.expiresAt <= now
            ? 'expired'
            : 'active';
      process.stdout.write(
        `${k.name}\tagent=${k.agent}\tgroups=${k.groups.join(',') || '-'}\troles=${k.roles.join(',') || '-'}\t${state}\tcreated ${new Date(k.createdAt).toISOString()}${k.expiresAt ? `\texpires ${new Date(k.expiresAt).toISOString()}` : ''}\n`,
      );
    }
  });
}

export async function revokeKey(flags: { config?: string; name: string }): Promise<number> {
  return withStore(flags.config, async (store, cacheTtlMs) => {
    if (await store.revoke(flags.name, Date.now())) {
      process.stdout.write(
        `key "${flags.name}" revoked (running gateways stop accepting it within ${cacheTtlMs % 1000 === 0 ? `${cacheTtlMs / 1000} s` : `${cacheTtlMs} ms`}, api_keys.cache_ttl)\n`,
      );
      return 0;
    }
    process.stderr.write(`no active key named "${flags.name}"\n`);
    return 1;
  });
}
