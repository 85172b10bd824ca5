// Writes Server-Sent Events to a client over a raw Node response (after fastify hands it over).

import type { ServerResponse } from 'node:http';
import type { MessageStream } from '../gateway/session.ts';
import { type JsonRpcMessage, serialize } from '../mcp/jsonrpc.ts';
import { encodeSseEvent } from '../mcp/sse.ts';

/** Bytes written to a client but not yet taken by it, past which its stream is considered stuck. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class SseWriter implements MessageStream {
  readonly #raw: ServerResponse;
  #open = true;
  #keepalive: NodeJS.Timeout | undefined;

  constructor(raw: ServerResponse, headers: Record<string, string>, keepaliveMs = 0) {
    this.#raw = raw;
    raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.flushHeaders();
    raw.on('close', () => this.#ended());
    if (keepaliveMs > 0) {
      // Comments keep idle connections alive through proxies; clients ignore them.
      this.#keepalive = setInterval(() => this.#open && this.#raw.write(': keepalive\n\n'), keepaliveMs);
      this.#keepalive.unref();
    }
  }

  get open(): boolean {
    return this.#open;
  }

  onClose(fn: () => void): void {
    this.#raw.on('close', fn);
  }

  send(m: JsonRpcMessage, eventId?: string): boolean {
    if (!this.#open) return false;
    // A client that stops reading must not make the gateway buffer without bound: its stream is ended
    // (it may resume) and the message counts as not delivered.
    if (this.#raw.writableLength > MAX_BUFFERED_BYTES) {
      this.close();
      return false;
    }
    const text = serialize(m);
    if (text !== undefined) this.#raw.write(encodeSseEvent(text, eventId));
    return true;
  }

  /** The priming event of a resumable stream: an id, an empty data field, and the reconnection delay. */
  prime(eventId: string, retryMs: number): void {
    if (this.#open) this.#raw.write(`id: ${eventId}\nretry: ${retryMs}\ndata: \n\n`);
  }

  close(): void {
    if (!this.#open) return;
    this.#ended();
    this.#raw.end();
  }

  #ended(): void {
    this.#open = false;
    if (this.#keepalive) clearInterval(this.#keepalive);
  }
}
