// Privacy of audit records: payload redaction (configured field names anywhere, argument paths of the
// route), size caps, and per sink pseudonymisation (keyed HMAC) and omission of fields. Pure functions,
// built once from config.

import { createHmac } from 'node:crypto';
import type { AuditRow, PayloadPolicy } from './record.ts';

export const REDACTED = '[redacted]';

/** One segment of an argument path: a key, an index, or `*` (any key or index). */
type Segment = string;

/** `card.number`, `items[*].ssn`, `$.password`, `a.*.b` → segments. */
export function parsePath(path: string): Segment[] {
  const body = path.replace(/^\$\.?/, '');
  const out: Segment[] = [];
  for (const part of body.split('.')) {
    const m = /^([^[\]]+)((?:\[(?:\*|\d+)\])*)$/.exec(part);
    if (!m) throw new RangeError(`invalid argument path ${JSON.stringify(path)}`);
    out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\*|\d+)\]/g)) out.push(idx[1]!);
  }
  return out;
}

export interface PayloadOptions {
  arguments: boolean;
  results: boolean;
  redactPaths: readonly string[];
  redactFields: readonly string[];
  maxBytes: number;
}

/** How a route's payloads are rendered: redacted, serialised, capped. */
export function payloadPolicy(o: PayloadOptions): PayloadPolicy {
  const paths = o.redactPaths.map(parsePath);
  const fields = new Set(o.redactFields.map((f) => f.toLowerCase()));
  return {
    arguments: o.arguments,
    results: o.results,
    render(value, args) {
      const json = JSON.stringify(redact(value, args ? paths : [], fields)) ?? 'null';
      const bytes = Buffer.byteLength(json);
      return bytes > o.maxBytes ? JSON.stringify({ $truncated: bytes }) : json;
    },
  };
}

/** A copy of `value` with redactions: keys named in `fields` anywhere, and the values `paths` reach. */
export function redact(value: unknown, paths: readonly Segment[][], fields: ReadonlySet<string>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const child = (key: string, v: unknown): unknown => {
    if (fields.has(key.toLowerCase())) return REDACTED;
    let next: Segment[][] | undefined;
    for (const p of paths) {
      if (p[0] !== '*' && p[0] !== key) continue;
      if (p.length === 1) return REDACTED;
      if (next === undefined) next = [];
      next.push(p.slice(1));
    }
    return redact(v, next ?? [], fields);
  };
  if (Array.isArray(value)) return value.map((v, i) => child(String(i), v));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = child(k, v);
  return out;
}

export type PseudonymField = 'user_id' | 'agent_identity' | 'tenant' | 'client_ip' | 'session_id';
export type OmitField =
  | 'client_ip'
  | 'user_agent'
  | 'arguments'
  | 'result'
  | 'error_message'
  | 'reason'
  | 'session_id'
  | 'trace_id';

export interface SinkPrivacyOptions {
  pseudonymize?: { key: string; fields: readonly PseudonymField[] } | undefined;
  omit: readonly OmitField[];
}

/** The pseudonym of a value under a key: stable, not reversible without brute force over the inputs. */
export function pseudonym(key: string, value: string): string {
  return `ps_${createHmac('sha256', key).update(value).digest('base64url').slice(0, 22)}`;
}

export interface SinkPrivacy {
  /** The row as this sink stores it (the same object when nothing changes). */
  apply(row: AuditRow): AuditRow;
  /** A filter value as stored (a raw user id becomes its pseudonym), so queries by raw values work. */
  stored(field: PseudonymField, value: string): string;
}

export function sinkPrivacy(o: SinkPrivacyOptions): SinkPrivacy {
  const ps = o.pseudonymize;
  const pfields = new Set<string>(ps?.fields ?? []);
  const omit = o.omit;
  if (pfields.size === 0 && omit.length === 0) return { apply: (row) => row, stored: (_f, v) => v };
  return {
    apply(row) {
      const out: AuditRow = { ...row };
      if (ps) {
        for (const f of pfields) {
          const v = out[f as PseudonymField];
          if (v !== null) (out as unknown as Record<string, unknown>)[f] = pseudonym(ps.key, v);
        }
      }
      for (const f of omit) (out as unknown as Record<string, unknown>)[f] = null;
      return out;
    },
    stored: (f, v) => (ps && pfields.has(f) ? pseudonym(ps.key, v) : v),
  };
}
