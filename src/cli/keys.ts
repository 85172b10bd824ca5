// `gatehouse keys create|list|revoke`: API keys for agents. The key is printed once, at creation; the
// gateway keeps only its hash (in api_keys.store, a SQLite file next to the config).

import { resolve } from 'node:path';
import { ApiKeyStore } from '../auth/api-keys.ts';
import { loadConfigFile } from '../config/load.ts';
import { parseDuration } from '../config/units.ts';
import { configPath } from './options.ts';

async function openStore(config: string | undefined): Promise<ApiKeyStore> {
  const loaded = await loadConfigFile(configPath(config));
  return new ApiKeyStore(resolve(loaded.baseDir, loaded.config.api_keys.store));
}

export async function createKey(flags: {
  config?: string;
  name: string;
  group?: string[];
  agent?: string;
  expires?: string;
}): Promise<void> {
  const store = await openStore(flags.config);
  try {
    const now = Date.now();
    let expiresAt: number | undefined;
    if (flags.expires !== undefined) {
      const ms = parseDuration(flags.expires);
      if (ms === undefined || ms === 0)
        throw new RangeError(`invalid --expires ${JSON.stringify(flags.expires)}: use e.g. 30d, 12h`);
      expiresAt = now + ms;
    }
    const key = store.create({
      name: flags.name,
      groups: flags.group ?? [],
      now,
      ...(flags.agent ? { agent: flags.agent } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    });
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `key "${flags.name}" created${expiresAt ? `, expires ${new Date(expiresAt).toISOString()}` : ''}; it is shown only now\n`,
    );
  } finally {
    store.close();
  }
}

export async function listKeys(flags: { config?: string }): Promise<void> {
  const store = await openStore(flags.config);
  try {
    const now = Date.now();
    for (const k of store.list()) {
      const state =
        k.revokedAt !== undefined
          ? 'revoked'
          : k.expiresAt !== undefined && k.expiresAt <= now
            ? 'expired'
            : 'active';
      process.stdout.write(
        `${k.name}\tagent=${k.agent}\tgroups=${k.groups.join(',') || '-'}\t${state}\tcreated ${new Date(k.createdAt).toISOString()}${k.expiresAt ? `\texpires ${new Date(k.expiresAt).toISOString()}` : ''}\n`,
      );
    }
  } finally {
    store.close();
  }
}

export async function revokeKey(flags: { config?: string; name: string }): Promise<number> {
  const store = await openStore(flags.config);
  try {
    if (store.revoke(flags.name, Date.now())) {
      process.stdout.write(`key "${flags.name}" revoked (running gateways stop accepting it within 10 s)\n`);
      return 0;
    }
    process.stderr.write(`no active key named "${flags.name}"\n`);
    return 1;
  } finally {
    store.close();
  }
}
