// Ids of server→client requests, rewritten so that the id alone says which upstream asked and what its
// own id was: whichever instance receives the client's answer can route it back without a table.

import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JsonRpcId } from './jsonrpc.ts';

const PREFIX = 'gh1.';

export function encodeServerRequestId(upstream: string, id: JsonRpcId): string {
  return PREFIX + Buffer.from(JSON.stringify([upstream, id])).toString('base64url');
}

export function decodeServerRequestId(id: JsonRpcId): { upstream: string; id: JsonRpcId } | undefined {
  if (typeof id !== 'string' || !id.startsWith(PREFIX)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(id.slice(PREFIX.length), 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      (typeof v[1] === 'string' || (typeof v[1] === 'number' && Number.isInteger(v[1])))
    ) {
      return { upstream: v[0], id: v[1] };
    }
  } catch {
    // not one of ours
  }
  return undefined;
}

const TASK_PREFIX = 'gh1t.';

/** A task id as clients of an aggregating route see it: it names the upstream that runs the task. */
export function encodeTaskId(upstream: string, taskId: string): string {
  return TASK_PREFIX + Buffer.from(JSON.stringify([upstream, taskId])).toString('base64url');
}

export function decodeTaskId(id: unknown): { upstream: string; taskId: string } | undefined {
  if (typeof id !== 'string' || !id.startsWith(TASK_PREFIX)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(id.slice(TASK_PREFIX.length), 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string')
      return { upstream: v[0], taskId: v[1] };
  } catch {
    // not one of ours
  }
  return undefined;
}

const RELATED_TASK = 'io.modelcontextprotocol/related-task';

/**
 * Rewrites the task ids of an upstream's message body (a result, or notification params) where MCP
 * 2025-11-25 puts them: a created task, a task, a list of tasks, and related-task metadata.
 */
export function mapTaskIds(
  body: Record<string, unknown>,
  map: (taskId: string) => string,
): Record<string, unknown> {
  let out = body;
  const copy = () => {
    if (out === body) out = { ...body };
    return out;
  };
  if (typeof body.taskId === 'string') copy().taskId = map(body.taskId);
  const task = body.task as Record<string, unknown> | undefined;
  if (task && typeof task === 'object' && typeof task.taskId === 'string')
    copy().task = { ...task, taskId: map(task.taskId) };
  if (Array.isArray(body.tasks)) {
    copy().tasks = body.tasks.map((t: unknown) =>
      t && typeof t === 'object' && typeof (t as Record<string, unknown>).taskId === 'string'
        ? { ...(t as Record<string, unknown>), taskId: map((t as Record<string, string>).taskId!) }
        : t,
    );
  }
  const meta = body._meta as Record<string, unknown> | undefined;
  const related = meta?.[RELATED_TASK] as Record<string, unknown> | undefined;
  if (related && typeof related.taskId === 'string')
    copy()._meta = { ...meta, [RELATED_TASK]: { ...related, taskId: map(related.taskId) } };
  return out;
}

/**
 * Ids the gateway hands a client, bound to that client's session: a MAC over (session, id) is appended,
 * so a client can never answer — or address — another session's server request or task, even when it
 * can guess the plain form (a shared stdio process numbers its requests for everyone). The key is the
 * gateway's; instances that must read each other's ids share it.
 */
export class SessionBoundIds {
  readonly #key: KeyObject;

  constructor(key: Buffer = randomBytes(32)) {
    this.#key = createSecretKey(key);
  }

  #mac(session: string, value: string): string {
    return createHmac('sha256', this.#key)
      .update(session)
      .update('\u0000')
      .update(value)
      .digest('base64url')
      .slice(0, 16);
  }

  #bind(session: string, value: string): string {
    return `${value}~${this.#mac(session, value)}`;
  }

  #unbind(session: string, bound: unknown): string | undefined {
    if (typeof bound !== 'string') return undefined;
    const at = bound.lastIndexOf('~');
    if (at <= 0) return undefined;
    const value = bound.slice(0, at);
    const mac = Buffer.from(bound.slice(at + 1));
    const expected = Buffer.from(this.#mac(session, value));
    return mac.length === expected.length && timingSafeEqual(mac, expected) ? value : undefined;
  }

  serverRequest(session: string, upstream: string, id: JsonRpcId): string {
    return this.#bind(session, encodeServerRequestId(upstream, id));
  }

  parseServerRequest(session: string, id: unknown): { upstream: string; id: JsonRpcId } | undefined {
    const plain = this.#unbind(session, id);
    return plain === undefined ? undefined : decodeServerRequestId(plain);
  }

  task(session: string, upstream: string, taskId: string): string {
    return this.#bind(session, encodeTaskId(upstream, taskId));
  }

  parseTask(session: string, id: unknown): { upstream: string; taskId: string } | undefined {
    const plain = this.#unbind(session, id);
    return plain === undefined ? undefined : decodeTaskId(plain);
  }
}
