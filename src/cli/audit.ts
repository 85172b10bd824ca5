// `gatehouse audit query|export|verify`: read the audit log a gateway wrote — from its SQLite file or its
// PostgreSQL tables (verify also reads JSON Lines files) — without the gateway running.

import type { Writable } from 'node:stream';
import { type AuditSinkConfig, type OpenedSink, openSink } from '../audit/audit-log.ts';
import type { VerifyResult } from '../audit/chain.ts';
import { type FILTER_NAMES, formatTable, parseFilter, parseTime, presentRecord } from '../audit/query.ts';
import { JsonlAuditSink } from '../audit/sinks/jsonl.ts';
import { SqliteAuditStore } from '../audit/sinks/sqlite.ts';
import type { AuditStore } from '../audit/store.ts';
import { loadConfigFile, resolveSecret } from '../config/load.ts';
import { configPath } from './options.ts';

export type FilterFlags = Partial<Record<(typeof FILTER_NAMES)[number], string>>;

export interface AuditIo {
  out: Writable;
  err: Writable;
  env?: NodeJS.ProcessEnv;
  now?: number;
}

const stdio = (): AuditIo => ({ out: process.stdout, err: process.stderr });

/** The sinks of the config's audit section, built (not opened); --sink picks one by name. */
async function sinksOf(
  config: string | undefined,
  env: NodeJS.ProcessEnv,
  only?: string,
): Promise<OpenedSink[]> {
  const loaded = await loadConfigFile(configPath(config, env), env);
  const all = loaded.config.audit.sinks;
  const chosen: AuditSinkConfig[] = only === undefined ? all : all.filter((s) => s.name === only);
  if (chosen.length === 0)
    throw new RangeError(
      `no audit sink named ${JSON.stringify(only)} in ${loaded.file} (sinks: ${all.map((s) => s.name).join(', ')})`,
    );
  const out: OpenedSink[] = [];
  for (const c of chosen)
    out.push(await openSink(c, loaded.baseDir, (ref) => resolveSecret(ref, loaded.baseDir, env)));
  return out;
}

/** The store to read: the named sink, else the first SQLite or PostgreSQL one. A missing SQLite file is an error. */
async function storeOf(
  flags: { config?: string; sink?: string },
  env: NodeJS.ProcessEnv,
): Promise<AuditStore> {
  const sinks = await sinksOf(flags.config, env, flags.sink);
  const s = sinks.find((x) => x.store);
  for (const other of sinks) if (other !== s) await other.sink.close();
  if (!s?.store)
    throw new RangeError(
      flags.sink
        ? `audit sink "${flags.sink}" cannot be queried (only sqlite and postgres sinks can)`
        : 'the config has no sqlite or postgres audit sink to query',
    );
  if (s.store instanceof SqliteAuditStore) s.store.open(false);
  return s.store;
}

export interface QueryFlags extends FilterFlags {
  config?: string;
  sink?: string;
  limit?: string;
  json?: boolean;
}

/** Newest first: a table, or JSON lines with --json. */
export async function auditQuery(flags: QueryFlags, io: AuditIo = stdio()): Promise<number> {
  const env = io.env ?? process.env;
  const filter = parseFilter((k) => flags[k as keyof FilterFlags], io.now ?? Date.now());
  const limit = flags.limit === undefined ? 50 : Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`--limit: a positive integer (got ${flags.limit})`);
  const store = await storeOf(flags, env);
  try {
    const records = await store.query(filter, { limit });
    if (flags.json) for (const r of records) io.out.write(`${JSON.stringify(presentRecord(r))}\n`);
    else if (records.length === 0) io.err.write('no audit records match\n');
    else io.out.write(formatTable(records));
    return 0;
  } finally {
    await store.close();
  }
}

export interface ExportFlags extends FilterFlags {
  config?: string;
  sink?: string;
}

/** Oldest first, as JSON lines (every column, the chain's too: an export can be checked record by record). */
export async function auditExport(flags: ExportFlags, io: AuditIo = stdio()): Promise<number> {
  const env = io.env ?? process.env;
  const filter = parseFilter((k) => flags[k as keyof FilterFlags], io.now ?? Date.now());
  const store = await storeOf(flags, env);
  let n = 0;
  try {
    for await (const r of store.records(filter)) {
      const line = `${JSON.stringify(presentRecord(r))}\n`;
      if (!io.out.write(line)) await new Promise((res) => io.out.once('drain', res));
      n++;
    }
    io.err.write(`exported ${n} record${n === 1 ? '' : 's'} from ${store.name}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

export interface VerifyFlags {
  config?: string;
  sink?: string;
  since?: string;
  until?: string;
}

/** Verifies every sink that keeps a chain (or --sink): exit 0 when all are intact, 1 at the first break. */
export async function auditVerify(flags: VerifyFlags, io: AuditIo = stdio()): Promise<number> {
  const env = io.env ?? process.env;
  const now = io.now ?? Date.now();
  const range = {
    since: flags.since === undefined ? undefined : parseTime(flags.since, now, 'since'),
    until: flags.until === undefined ? undefined : parseTime(flags.until, now, 'until'),
  };
  const sinks = await sinksOf(flags.config, env, flags.sink);
  let code = 0;
  try {
    for (const s of sinks) {
      let result: VerifyResult;
      if (s.store) {
        if (s.store instanceof SqliteAuditStore) s.store.open(false);
        result = await s.store.verify(range);
      } else if (s.sink instanceof JsonlAuditSink) result = await s.sink.verify(range);
      else {
        if (flags.sink) {
          io.err.write(`${s.sink.name}: a ${s.sink.type} sink keeps no records to verify\n`);
          code = 1;
        }
        continue;
      }
      io.out.write(`${describe(s.sink.name, result)}\n`);
      if (!result.ok) code = 1;
    }
  } finally {
    for (const s of sinks) await s.sink.close();
  }
  return code;
}

function describe(name: string, r: VerifyResult): string {
  if (!r.ok && r.broken) {
    const b = r.broken;
    const when = b.ts === null || Number.isNaN(b.ts) ? '' : `, ${new Date(b.ts).toISOString()}`;
    return `${name}: BROKEN at seq ${b.seq} (id ${b.id ?? '?'}${when}): ${b.problem}${r.checked > 0 ? ` — ${r.checked} records before it verified (seq ${r.first}..${r.last})` : ''}`;
  }
  if (r.checked === 0) return `${name}: OK — no records in the range`;
  const a = r.anchor!;
  const from =
    a.kind === 'genesis'
      ? 'from the first record'
      : a.kind === 'checkpoint'
        ? `from the retention purge cut at seq ${a.seq}`
        : a.kind === 'rotated'
          ? `from the oldest record kept (seq ${r.first}; earlier files rotated away)`
          : `following seq ${a.seq}`;
  return `${name}: OK — ${r.checked} record${r.checked === 1 ? '' : 's'} (seq ${r.first}..${r.last}) complete and unaltered, ${from}; last hash ${r.lastHash}`;
}
