// Resumable client streams (2025-11-25): every event of a POST's SSE answer gets an id, is kept for a
// while, and a client that lost the stream resumes it with GET + Last-Event-ID — including the answer
// still to come, since the upstream call goes on when the client's connection drops.

import type { JsonRpcMessage } from '../mcp/jsonrpc.ts';
import type { MessageStream } from './session.ts';

/** Events kept per stream; a stream that outgrows it can no longer be resumed from its start. */
const MAX_EVENTS = 512;

export class ReplayableStream {
  readonly key: string;
  #events: { seq: number; m: JsonRpcMessage }[] = [];
  #next = 1;
  #writer: MessageStream | undefined;
  #done = false;
  doneAt = 0;

  constructor(key: string) {
    this.key = key;
  }

  get done(): boolean {
    return this.#done;
  }

  /** The id of the priming event that starts the stream (an id with no data). */
  get primingId(): string {
    return `${this.key}.0`;
  }

  /** Sends the message to the attached writer (if still connected) and keeps it for a resume. */
  push(m: JsonRpcMessage): void {
    const seq = this.#next++;
    this.#events.push({ seq, m });
    if (this.#events.length > MAX_EVENTS) this.#events.shift();
    if (this.#writer && !this.#writer.send(m, `${this.key}.${seq}`)) this.#writer = undefined;
  }

  /** Attaches a (re)connected writer: replays what followed `afterSeq`, then goes live. */
  attach(writer: MessageStream, afterSeq: number): void {
    // One client stream at a time: a resume replaces (and ends) the stream it resumes.
    if (this.#writer !== writer) this.#writer?.close();
    this.#writer = writer;
    for (const e of this.#events) {
      if (e.seq > afterSeq && !writer.send(e.m, `${this.key}.${e.seq}`)) {
        this.#writer = undefined;
        return;
      }
    }
    if (this.#done) this.#close();
  }

  detach(writer: MessageStream): void {
    if (this.#writer === writer) this.#writer = undefined;
  }

  /** The answer was pushed: end the stream, keeping its events for a late resume. */
  complete(now: number): void {
    this.#done = true;
    this.doneAt = now;
    this.#close();
  }

  #close(): void {
    this.#writer?.close();
    this.#writer = undefined;
  }
}

/** Parses a Last-Event-ID of ours ("<stream>.<seq>"). */
export function parseEventId(id: string): { key: string; seq: number } | undefined {
  const dot = id.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const seq = Number(id.slice(dot + 1));
  return Number.isInteger(seq) && seq >= 0 ? { key: id.slice(0, dot), seq } : undefined;
}
