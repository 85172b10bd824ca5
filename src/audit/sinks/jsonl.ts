// The JSON Lines audit sink, for log shippers (Vector, Fluent Bit, Filebeat tail it): one record per
// line, the chain continuing across rotations (at max_size the file becomes .1, .2 … and at most `keep`
// are kept). A line cut short by a crash is dropped at the next open, so the file stays parseable.

import { existsSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type ChainPoint, GENESIS, link, type VerifyResult, verifyChain } from '../chain.ts';
import type { AuditRow, StoredRecord } from '../record.ts';
import type { AuditSink } from '../store.ts';

/** A stored record as one JSON line: the record, plus an ISO `time` for shippers (not hashed). */
export function recordLine(r: StoredRecord, extra?: Record<string, unknown>): string {
  return `${JSON.stringify({ ...extra, time: new Date(r.ts).toISOString(), ...r })}\n`;
}

/** The end of a file: enough for its last record (a record with payloads stays well under this). */
const TAIL = 1 << 20;

async function readTail(fh: FileHandle, size: number): Promise<string> {
  const len = Math.min(size, TAIL);
  if (len === 0) return '';
  const buf = Buffer.alloc(len);
  await fh.read(buf, 0, len, size - len);
  return buf.toString('utf8');
}

/** The last complete line of a file's text, or undefined. */
function lastLine(text: string): string | undefined {
  const end = text.lastIndexOf('\n');
  if (end <= 0) return undefined;
  const start = text.lastIndexOf('\n', end - 1);
  return text.slice(start + 1, end);
}

export class JsonlAuditSink implements AuditSink {
  readonly type = 'jsonl';
  readonly name: string;
  readonly path: string;
  readonly #maxSize: number;
  readonly #keep: number;
  #fh: FileHandle | undefined;
  #size = 0;
  #tip: ChainPoint | undefined;
  /** The last write failed: the file's tail is checked (and a cut line dropped) before the next one. */
  #dirty = false;

  constructor(name: string, path: string, maxSize: number, keep: number) {
    this.name = name;
    this.path = path;
    this.#maxSize = maxSize;
    this.#keep = keep;
  }

  async #open(): Promise<FileHandle> {
    if (this.#fh && !this.#dirty) return this.#fh;
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.path, 'a+');
    try {
      let size = (await fh.stat()).size;
      let tail = await readTail(fh, size);
      if (tail.length > 0 && !tail.endsWith('\n')) {
        // A line cut short (crash, full disk): drop it; its record is written again.
        const cut = Buffer.byteLength(tail.slice(tail.lastIndexOf('\n') + 1));
        size -= cut;
        await fh.truncate(size);
        tail = await readTail(fh, size);
      }
      this.#size = size;
      const last = lastLine(tail) ?? (await this.#lastOfRotated());
      this.#tip = last ? pointOf(last) : { seq: 0, hash: GENESIS };
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.#fh = fh;
    this.#dirty = false;
    return fh;
  }

  async #lastOfRotated(): Promise<string | undefined> {
    const prev = `${this.path}.1`;
    if (!existsSync(prev)) return undefined;
    const fh = await open(prev, 'r');
    try {
      return lastLine(await readTail(fh, (await fh.stat()).size));
    } finally {
      await fh.close();
    }
  }

  async write(rows: readonly AuditRow[], retry: boolean): Promise<void> {
    try {
      let fh = await this.#open();
      let todo = rows;
      if (retry && this.#tip && this.#tip.seq > 0) {
        // Rows up to the last one found in the file were written before the failure.
        const lastId = await this.#lastId();
        const i = lastId === undefined ? -1 : rows.findIndex((r) => r.id === lastId);
        if (i >= 0) todo = rows.slice(i + 1);
      }
      if (todo.length === 0) return;
      const linked = link(todo, this.#tip!);
      const text = linked.map((r) => recordLine(r)).join('');
      const bytes = Buffer.byteLength(text);
      if (this.#size > 0 && this.#size + bytes > this.#maxSize) {
        await this.#rotate();
        fh = await this.#open();
      }
      await fh.write(text);
      this.#size += bytes;
      this.#tip = { seq: linked[linked.length - 1]!.seq, hash: linked[linked.length - 1]!.hash };
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
  }

  async #lastId(): Promise<string | undefined> {
    const fh = await open(this.path, 'r');
    let line: string | undefined;
    try {
      line = lastLine(await readTail(fh, (await fh.stat()).size));
    } finally {
      await fh.close();
    }
    if (!line) return undefined;
    try {
      return String((JSON.parse(line) as { id?: unknown }).id);
    } catch {
      return undefined;
    }
  }

  async #rotate(): Promise<void> {
    await this.#fh?.close();
    this.#fh = undefined;
    await rm(`${this.path}.${this.#keep}`, { force: true });
    for (let i = this.#keep - 1; i >= 1; i--) {
      if (existsSync(`${this.path}.${i}`)) await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    }
    await rename(this.path, `${this.path}.1`);
  }

  /** Files oldest first: the rotated ones (.keep … .1), then the current one. */
  files(): string[] {
    const out: string[] = [];
    for (let i = this.#keep; i >= 1; i--) if (existsSync(`${this.path}.${i}`)) out.push(`${this.path}.${i}`);
    if (existsSync(this.path)) out.push(this.path);
    return out;
  }

  /** Removes rotated files whose newest record is older than `now - retentionMs`. */
  async purge(now: number, retentionMs: number): Promise<{ deleted: number }> {
    let deleted = 0;
    for (const f of this.files()) {
      if (f === this.path) continue;
      if ((await stat(f)).mtimeMs < now - retentionMs) {
        await rm(f, { force: true });
        deleted++;
      }
    }
    return { deleted };
  }

  /** Verifies the chain across the files kept, from the oldest retained record (earlier ones rotated away). */
  async verify(range: { since?: number; until?: number } = {}): Promise<VerifyResult> {
    const files = this.files();
    let before: ChainPoint | undefined;
    let firstPrev: string | undefined;
    async function* inRange(): AsyncIterable<StoredRecord> {
      for (const f of files) {
        const text = await readFile(f, 'utf8');
        for (const line of text.split('\n')) {
          if (line === '') continue;
          let r: StoredRecord & { time?: string };
          try {
            r = JSON.parse(line) as StoredRecord & { time?: string };
          } catch {
            r = { seq: Number.NaN, id: null, ts: null, prev_hash: '', hash: '' } as unknown as StoredRecord;
          }
          if (range.until !== undefined && r.ts > range.until) return;
          if (range.since !== undefined && r.ts < range.since) {
            before = { seq: r.seq, hash: r.hash };
            continue;
          }
          const { time: _time, ...rec } = r;
          firstPrev ??= rec.prev_hash;
          yield rec as StoredRecord;
        }
      }
    }
    return verifyChain(inRange(), (first) => {
      if (before && before.seq === first - 1) return { ...before, kind: 'record' };
      if (first === 1) return { seq: 0, hash: GENESIS, kind: 'genesis' };
      // Earlier records were rotated away: the proof starts at the oldest one kept.
      return { seq: first - 1, hash: firstPrev ?? '', kind: 'rotated' };
    });
  }

  async close(): Promise<void> {
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
  }
}

function pointOf(line: string): ChainPoint {
  const r = JSON.parse(line) as { seq: number; hash: string };
  return { seq: Number(r.seq), hash: String(r.hash) };
}
