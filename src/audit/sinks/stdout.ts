// The stdout audit sink: one JSON line per record, marked "type":"gatehouse.audit" so that a log
// pipeline reading the container's output can route it apart from the gateway's logs. Its chain starts
// afresh with each process (the pipeline keeps the history).

import type { Writable } from 'node:stream';
import { type ChainPoint, GENESIS, link } from '../chain.ts';
import type { AuditRow } from '../record.ts';
import type { AuditSink } from '../store.ts';
import { recordLine } from './jsonl.ts';

export const STDOUT_TYPE = 'gatehouse.audit';

export class StdoutAuditSink implements AuditSink {
  readonly type = 'stdout';
  readonly name: string;
  readonly #out: Writable;
  #tip: ChainPoint = { seq: 0, hash: GENESIS };

  constructor(name: string, out: Writable = process.stdout) {
    this.name = name;
    this.#out = out;
  }

  async write(rows: readonly AuditRow[]): Promise<void> {
    if (rows.length === 0) return;
    const linked = link(rows, this.#tip);
    const text = linked.map((r) => recordLine(r, { type: STDOUT_TYPE })).join('');
    this.#tip = { seq: linked[linked.length - 1]!.seq, hash: linked[linked.length - 1]!.hash };
    if (!this.#out.write(text)) await new Promise<void>((r) => this.#out.once('drain', () => r()));
  }

  async close(): Promise<void> {}
}
