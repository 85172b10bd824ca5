// The spool of one sink: an append-only file of records (JSON lines, already in the sink's private form)
// that wait, in order, while the sink is down or its queue overflows; read back in batches when it
// returns, the consumed offset kept beside it (so a restart neither loses nor repeats records), and
// emptied once caught up. Operations are synchronous and short (a batch at a time), and never run on the
// request path: the writer calls them from its own loop and timers.

import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { AuditRow } from './record.ts';

/** After a failure to open or write the spool, how long before it is tried again. */
const RETRY_MS = 1_000;
const CHUNK = 1 << 20;

export interface SpoolBatch {
  rows: AuditRow[];
  /** Offset just after the batch's last line. */
  end: number;
  /** Lines that were not records (a line cut by a crash): skipped, counted as lost. */
  corrupt: number;
}

export class Spool {
  readonly path: string;
  readonly #offsetPath: string;
  readonly #maxBytes: number;
  #fd: number | undefined;
  #size = 0;
  #read = 0;
  #records = 0;
  #brokenUntil = 0;
  lastError: string | undefined;

  constructor(path: string, maxBytes: number) {
    this.path = path;
    this.#offsetPath = `${path}.offset`;
    this.#maxBytes = maxBytes;
  }

  get enabled(): boolean {
    return this.#maxBytes > 0;
  }

  /** Records waiting in the spool. */
  get records(): number {
    return this.#records;
  }

  get bytes(): number {
    return this.#size - this.#read;
  }

  /** Whether a record can be appended now (enabled, not failing, not full). */
  usable(now = Date.now()): boolean {
    return this.#maxBytes > 0 && now >= this.#brokenUntil && this.#size < this.#maxBytes;
  }

  /** Opens an existing spool left by an earlier run (records to replay), if there is one. */
  recover(): void {
    if (this.#maxBytes > 0 && existsSync(this.path)) this.#open();
  }

  #open(): number {
    if (this.#fd !== undefined) return this.#fd;
    mkdirSync(dirname(this.path), { recursive: true });
    const fd = openSync(this.path, 'a+');
    try {
      let size = fstatSync(fd).size;
      // A line cut short by a crash: dropped (it was never acknowledged as kept).
      if (size > 0) {
        const tail = Buffer.alloc(Math.min(size, CHUNK));
        readSync(fd, tail, 0, tail.length, size - tail.length);
        if (tail[tail.length - 1] !== 0x0a) {
          const nl = tail.lastIndexOf(0x0a);
          size = nl < 0 ? size - tail.length : size - tail.length + nl + 1;
          ftruncateSync(fd, size);
        }
      }
      let read = 0;
      if (existsSync(this.#offsetPath)) {
        const n = Number(readFileSync(this.#offsetPath, 'utf8'));
        if (Number.isInteger(n) && n >= 0 && n <= size) read = n;
      }
      this.#size = size;
      this.#read = read;
      this.#records = countLines(fd, read, size);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.#fd = fd;
    return fd;
  }

  /** Appends rows in order; false (and nothing written) when the spool is full or failing. */
  append(rows: readonly AuditRow[], now = Date.now()): boolean {
    if (rows.length === 0) return true;
    if (!this.usable(now)) return false;
    try {
      const fd = this.#open();
      let text = '';
      for (const r of rows) text += `${JSON.stringify(r)}\n`;
      const buf = Buffer.from(text);
      if (this.#size + buf.length > this.#maxBytes) return false;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      this.#size += buf.length;
      this.#records += rows.length;
      return true;
    } catch (err) {
      this.#fail(err, now);
      return false;
    }
  }

  /** The next records after what was consumed, at most `max`; undefined when none wait. */
  read(max: number): SpoolBatch | undefined {
    if (this.#read >= this.#size) return undefined;
    const fd = this.#open();
    let len = Math.min(this.#size - this.#read, CHUNK);
    for (;;) {
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, this.#read);
      const rows: AuditRow[] = [];
      let corrupt = 0;
      let pos = 0;
      while (rows.length + corrupt < max) {
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0) break;
        try {
          rows.push(JSON.parse(buf.toString('utf8', pos, nl)) as AuditRow);
        } catch {
          corrupt++;
        }
        pos = nl + 1;
      }
      if (pos > 0) return { rows, end: this.#read + pos, corrupt };
      // One line longer than the chunk: read more of it.
      if (len >= this.#size - this.#read) return { rows, end: this.#size, corrupt: 1 };
      len = Math.min(len * 2, this.#size - this.#read);
    }
  }

  /** Marks a batch as written: the next read starts after it; an emptied spool is truncated. */
  consume(batch: SpoolBatch): void {
    this.#read = batch.end;
    this.#records = Math.max(0, this.#records - batch.rows.length - batch.corrupt);
    if (this.#read >= this.#size) {
      this.#reset();
      return;
    }
    writeFileSync(this.#offsetPath, String(this.#read));
  }

  /** Everything was replayed: the file starts again empty. */
  #reset(): void {
    if (this.#fd !== undefined) ftruncateSync(this.#fd, 0);
    this.#size = 0;
    this.#read = 0;
    this.#records = 0;
    rmSync(this.#offsetPath, { force: true });
  }

  #fail(err: unknown, now: number): void {
    this.lastError = err instanceof Error ? err.message : String(err);
    this.#brokenUntil = now + RETRY_MS;
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // already gone
      }
      this.#fd = undefined;
    }
  }

  close(): void {
    if (this.#fd === undefined) return;
    const empty = this.#read >= this.#size;
    closeSync(this.#fd);
    this.#fd = undefined;
    if (empty) {
      rmSync(this.path, { force: true });
      rmSync(this.#offsetPath, { force: true });
    }
  }
}

function countLines(fd: number, from: number, to: number): number {
  let n = 0;
  const buf = Buffer.alloc(CHUNK);
  for (let pos = from; pos < to; ) {
    const len = readSync(fd, buf, 0, Math.min(CHUNK, to - pos), pos);
    if (len <= 0) break;
    for (let i = 0; i < len; i++) if (buf[i] === 0x0a) n++;
    pos += len;
  }
  return n;
}
