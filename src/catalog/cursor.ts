// Pagination cursors of aggregated lists: opaque to clients, tamper-checked (HMAC), carrying only what
// the gateway needs to continue: which list and where.

import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';

export interface CursorState {
  /** Which list: tools, prompts, resources, templates. */
  kind: string;
  /** Index of the next item. */
  offset: number;
}

export class CursorCodec {
  readonly #key: KeyObject;

  /** A key shared by the instances that must read each other's cursors; random by default. */
  constructor(key: Buffer = randomBytes(32)) {
    this.#key = createSecretKey(key); // a KeyObject: no key import per cursor
  }

  encode(state: CursorState): string {
    const body = Buffer.from(`${state.kind}:${state.offset}`).toString('base64url');
    return `${body}.${this.#mac(body)}`;
  }

  /** The state, or undefined for anything not made by this codec for this kind of list. */
  decode(cursor: unknown, kind: string): CursorState | undefined {
    if (typeof cursor !== 'string') return undefined;
    const dot = cursor.indexOf('.');
    if (dot <= 0) return undefined;
    const body = cursor.slice(0, dot);
    const mac = Buffer.from(cursor.slice(dot + 1));
    const expected = Buffer.from(this.#mac(body));
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    const [k, o] = Buffer.from(body, 'base64url').toString('utf8').split(':');
    const offset = Number(o);
    if (k !== kind || !Number.isInteger(offset) || offset < 0) return undefined;
    return { kind, offset };
  }

  #mac(body: string): string {
    return createHmac('sha256', this.#key).update(body).digest('base64url').slice(0, 22);
  }
}
