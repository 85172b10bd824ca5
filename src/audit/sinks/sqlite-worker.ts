// The thread that writes a gateway's SQLite audit database. node:sqlite is synchronous: hashing and
// inserting a batch (and purging) here keeps that work off the event loop that serves requests. It owns
// its connection; messages in, one answer per message out.

import { parentPort, workerData } from 'node:worker_threads';
import { sinkPrivacy } from '../privacy.ts';
import type { AuditRow } from '../record.ts';
import { SqliteAuditStore } from './sqlite.ts';

export type WorkerCall =
  | { op: 'write' /** JSON array of rows */; rows: string; retry: boolean }
  | { op: 'purge'; now: number; retentionMs: number }
  | { op: 'close' };
export type WorkerRequest = WorkerCall & { id: number };

export type WorkerReply =
  | { id: number; ok: true; result?: unknown }
  | { id: number; ok: false; error: string; code?: string };

const { name, path } = workerData as { name: string; path: string };
// Rows arrive in the sink's stored form already (privacy applied by the writer).
const store = new SqliteAuditStore(name, path, sinkPrivacy({ omit: [] }));
const port = parentPort!;

port.on('message', async (m: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    if (m.op === 'write') {
      await store.write(JSON.parse(m.rows) as AuditRow[], m.retry);
      reply = { id: m.id, ok: true };
    } else if (m.op === 'purge') {
      reply = { id: m.id, ok: true, result: await store.purge(m.now, m.retentionMs) };
    } else {
      await store.close();
      reply = { id: m.id, ok: true };
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    reply = { id: m.id, ok: false, error: e.message, ...(e.code ? { code: e.code } : {}) };
  }
  port.postMessage(reply);
});
