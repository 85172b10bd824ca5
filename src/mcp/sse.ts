// Server-Sent Events: an incremental decoder for upstream streams and an encoder for client streams.

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
}

/** Encodes one event. Line breaks in data are split into data lines; in id and event they are dropped. */
export function encodeSseEvent(data: string, id?: string, event?: string): string {
  let out = '';
  if (event) out += `event: ${event.replace(/[\r\n]/g, '')}\n`;
  if (id !== undefined) out += `id: ${id.replace(/[\r\n]/g, '')}\n`;
  if (data.includes('\n') || data.includes('\r')) {
    for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  } else {
    out += `data: ${data}\n`;
  }
  return `${out}\n`;
}

/**
 * Incremental SSE parser (WHATWG rules): feed it text chunks, it calls onEvent per dispatched event.
 * `maxEventBytes` bounds the buffered size of one event so a hostile stream cannot grow memory.
 */
export class SseDecoder {
  /** The current, unterminated line, in pieces: joined once at its end (no rescans, no quadratic cost). */
  #partial: string[] = [];
  #partialSize = 0;
  #data: string[] = [];
  #dataBytes = 0;
  #event = '';
  #id: string | undefined;
  #retry: number | undefined;
  #lastEventId: string | undefined;
  #streamRetry: number | undefined;
  #start = true;
  #skipLf = false;
  readonly #maxEventBytes: number;
  readonly #onEvent: (e: SseEvent) => void;

  constructor(onEvent: (e: SseEvent) => void, maxEventBytes: number) {
    this.#onEvent = onEvent;
    this.#maxEventBytes = maxEventBytes;
  }

  get lastEventId(): string | undefined {
    return this.#lastEventId;
  }

  /** The last reconnection delay the stream asked for (a stream setting, not tied to an event). */
  get retry(): number | undefined {
    return this.#streamRetry;
  }

  /**
   * Forgets a half-received line or event (the connection broke) before the stream is resumed on a new
   * connection; keeps what outlives a connection: the last event id and the reconnection delay.
   */
  reset(): void {
    this.#partial = [];
    this.#partialSize = 0;
    this.#data = [];
    this.#dataBytes = 0;
    this.#event = '';
    this.#id = undefined;
    this.#retry = undefined;
    this.#start = true;
    this.#skipLf = false;
  }

  /** Throws RangeError when an event exceeds the size bound. */
  push(chunk: string): void {
    if (this.#start) {
      this.#start = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // one leading BOM is ignored
    }
    // A CR ended the previous chunk: it was a line end, and an LF right after it belongs to it.
    if (this.#skipLf && chunk.length > 0) {
      this.#skipLf = false;
      if (chunk.charCodeAt(0) === 10) chunk = chunk.slice(1);
    }
    let start = 0;
    let lf = chunk.indexOf('\n');
    let cr = chunk.indexOf('\r');
    while (lf >= 0 || cr >= 0) {
      const end = cr < 0 || (lf >= 0 && lf < cr) ? lf : cr;
      const piece = chunk.slice(start, end);
      const line = this.#partial.length === 0 ? piece : this.#partial.join('') + piece;
      this.#partial = [];
      this.#partialSize = 0;
      this.#line(line);
      start = end + 1;
      if (end === cr) {
        if (start === chunk.length) this.#skipLf = true;
        else if (chunk.charCodeAt(start) === 10) start++;
        cr = chunk.indexOf('\r', start);
      }
      if (lf >= 0 && lf < start) lf = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) {
      this.#partial.push(start === 0 ? chunk : chunk.slice(start));
      this.#partialSize += chunk.length - start;
    }
    if (this.#partialSize + this.#dataBytes > this.#maxEventBytes) {
      throw new RangeError(`SSE event larger than ${this.#maxEventBytes} characters`);
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0 || this.#id !== undefined) {
        const e: SseEvent = { event: this.#event || 'message', data: this.#data.join('\n') };
        if (this.#id !== undefined) {
          e.id = this.#id;
          this.#lastEventId = this.#id; // an event's id counts once the event is complete
        }
        if (this.#retry !== undefined) e.retry = this.#retry;
        this.#onEvent(e);
      }
      this.#data = [];
      this.#dataBytes = 0;
      this.#event = '';
      this.#id = undefined;
      this.#retry = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58) return; // comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'data':
        this.#data.push(value);
        this.#dataBytes += value.length;
        if (this.#dataBytes > this.#maxEventBytes)
          throw new RangeError(`SSE event larger than ${this.#maxEventBytes} characters`);
        break;
      case 'event':
        this.#event = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.#id = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this.#retry = Number(value);
          this.#streamRetry = this.#retry;
        }
        break;
    }
  }
}
