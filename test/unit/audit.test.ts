// The pure parts of the audit log and its local files: the record made from an exchange event, the hash
// chain and its verification, redaction and pseudonymisation, query parsing, and the spool (append,
// replay, a restart after a crash neither losing nor repeating records).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonical, GENESIS, link, recordHash, verifyChain } from '../../src/audit/chain.ts';
import {
  parsePath,
  payloadPolicy,
  pseudonym,
  REDACTED,
  redact,
  sinkPrivacy,
} from '../../src/audit/privacy.ts';
import {
  decodeCursor,
  encodeCursor,
  formatTable,
  parseFilter,
  parseTime,
  presentRecord,
} from '../../src/audit/query.ts';
import { type AuditRow, COLUMNS, recordOf, type StoredRecord } from '../../src/audit/record.ts';
import { Spool } from '../../src/audit/spool.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { ExchangeEvent } from '../../src/telemetry/events.ts';

const T0 = Date.UTC(2026, 0, 31, 12, 0, 0);

function event(over: Partial<ExchangeEvent> = {}): ExchangeEvent {
  return {
    startedAt: T0,
    route: '/mcp',
    sessionId: 's-1',
    subject: 'alice',
    mcpMethod: 'tools/call',
    upstream: 'shop',
    target: 'cancel-order',
    outcome: 'ok',
    httpStatus: 200,
    rpcCode: undefined,
    durationMs: 1.23456,
    upstreamMs: 0.9876543,
    requestId: 'r-1',
    agent: 'bot',
    tenant: 't1',
    targetKind: 'tool',
    clientIp: '10.0.0.1',
    userAgent: 'agent/1',
    requestBytes: 120,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    request: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'cancel', arguments: { a: 1 } } },
    response: { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'done' }] } },
    ...over,
  };
}

function row(i: number, over: Partial<AuditRow> = {}): AuditRow {
  return { ...recordOf(event({ startedAt: T0 + i, requestId: `r-${i}` }), undefined).row(), ...over };
}

describe('the record of an exchange', () => {
  it('maps every field of an allowed tool call', () => {
    const r = recordOf(event(), undefined).row();
    expect(r).toEqual({
      id: expect.any(String),
      ts: T0,
      user_id: 'alice',
      agent_identity: 'bot',
      tenant: 't1',
      mcp_server: 'shop',
      route: '/mcp',
      mcp_method: 'tools/call',
      tool_name: 'cancel-order',
      resource_uri: null,
      prompt_name: null,
      decision: 'allow',
      reason: null,
      outcome: 'ok',
      response_code: 200,
      jsonrpc_code: null,
      upstream_response_code: null,
      is_error: false,
      latency_ms: 1.235,
      upstream_latency_ms: 0.988,
      request_bytes: 120,
      response_bytes: expect.any(Number),
      session_id: 's-1',
      request_id: 'r-1',
      rpc_id: '7',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      span_id: 'b7ad6b7169203331',
      client_ip: '10.0.0.1',
      user_agent: 'agent/1',
      error_message: null,
      arguments: null,
      result: null,
    });
    expect(r.response_bytes).toBe(Buffer.byteLength(JSON.stringify(event().response)));
    // Every column but the chain's is a field of the row.
    expect(Object.keys(r).sort()).toEqual(
      COLUMNS.filter((c) => !['seq', 'prev_hash', 'hash'].includes(c)).sort(),
    );
  });

  it('a denial is decision deny with its reason; the answer code and message are kept', () => {
    const r = recordOf(
      event({
        outcome: 'denied',
        reason: 'none of the caller\'s subjects is allowed by acl.tools["shop:cancel-order"]',
        rpcCode: -32602,
        upstreamMs: undefined,
        response: { jsonrpc: '2.0', id: 7, error: { code: -32602, message: 'Unknown tool: cancel-order' } },
      }),
      undefined,
    ).row();
    expect(r.decision).toBe('deny');
    expect(r.reason).toContain('acl.tools');
    expect(r.jsonrpc_code).toBe(-32602);
    expect(r.error_message).toBe('Unknown tool: cancel-order');
    expect(r.is_error).toBe(true);
    expect(r.upstream_latency_ms).toBeNull();
    expect(r.upstream_response_code).toBeNull();
  });

  it("an upstream's own JSON-RPC error is its response code; a REST status wins when known", () => {
    const err = { jsonrpc: '2.0' as const, id: 7, error: { code: -32050, message: 'boom' } };
    expect(
      recordOf(event({ outcome: 'error', rpcCode: -32050, response: err }), undefined).row(),
    ).toMatchObject({
      upstream_response_code: -32050,
      decision: 'allow',
      is_error: true,
    });
    expect(recordOf(event({ upstreamCode: 503, isError: true }), undefined).row()).toMatchObject({
      upstream_response_code: 503,
      is_error: true,
    });
  });

  it('an edge refusal (no answer object) is a denial with its HTTP status and reason', () => {
    const r = recordOf(
      event({
        subject: undefined,
        mcpMethod: '',
        upstream: undefined,
        target: undefined,
        targetKind: undefined,
        outcome: 'error',
        httpStatus: 413,
        rpcCode: -32000,
        upstreamMs: undefined,
        reason: 'Payload Too Large: the body exceeds 1024 bytes',
        request: undefined,
        response: undefined,
      }),
      undefined,
    ).row();
    expect(r).toMatchObject({
      decision: 'deny',
      response_code: 413,
      jsonrpc_code: -32000,
      mcp_method: null,
      user_id: null,
      reason: 'Payload Too Large: the body exceeds 1024 bytes',
      response_bytes: null,
      rpc_id: null,
      is_error: true,
    });
  });

  it('names resources and prompts by kind (and by method when the router gave no kind)', () => {
    expect(recordOf(event({ targetKind: 'resource', target: 'file:///a' }), undefined).row()).toMatchObject({
      resource_uri: 'file:///a',
      tool_name: null,
    });
    expect(
      recordOf(event({ mcpMethod: 'prompts/get', targetKind: undefined, target: 'greet' }), undefined).row(),
    ).toMatchObject({ prompt_name: 'greet', tool_name: null });
  });

  it('caps client-chosen text (user agent, reasons)', () => {
    const r = recordOf(event({ userAgent: 'x'.repeat(5000) }), undefined).row();
    expect(r.user_agent!.length).toBeLessThanOrEqual(513);
  });

  it('renders payloads only when the route records them, redacted, once', () => {
    const policy = payloadPolicy({
      arguments: true,
      results: true,
      redactPaths: ['card.number', 'items[*].ssn'],
      redactFields: ['password'],
      maxBytes: 10_000,
    });
    const e = event({
      request: {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name: 'pay',
          arguments: { card: { number: '4111', holder: 'A' }, items: [{ ssn: '1', n: 2 }], Password: 'pw' },
        },
      },
      response: { jsonrpc: '2.0', id: 1, result: { token: 'abc', ok: true } },
    });
    const rec = recordOf(e, policy);
    const r = rec.row();
    expect(JSON.parse(r.arguments!)).toEqual({
      card: { number: REDACTED, holder: 'A' },
      items: [{ ssn: REDACTED, n: 2 }],
      Password: REDACTED,
    });
    expect(JSON.parse(r.result!)).toEqual({ token: 'abc', ok: true }); // only `password` is configured here
    expect(rec.row()).toBe(r);
    expect(recordOf(e, undefined).row().arguments).toBeNull();
  });
});

describe('redaction and pseudonymisation', () => {
  it('parses argument paths', () => {
    expect(parsePath('card.number')).toEqual(['card', 'number']);
    expect(parsePath('$.items[*].ssn')).toEqual(['items', '*', 'ssn']);
    expect(parsePath('a[0][1].b')).toEqual(['a', '0', '1', 'b']);
    expect(() => parsePath('a..b')).toThrow(RangeError);
  });

  it('redacts paths through wildcards and indexes, and field names anywhere', () => {
    const v = { a: [{ b: 1, c: 2 }, { b: 3 }], d: { e: { secret: 's', f: 1 } }, g: 'keep' };
    expect(redact(v, [parsePath('a[0].b'), parsePath('d.*.f')], new Set(['secret']))).toEqual({
      a: [{ b: REDACTED, c: 2 }, { b: 3 }],
      d: { e: { secret: REDACTED, f: REDACTED } },
      g: 'keep',
    });
    expect(v.a[0]!.b).toBe(1); // the request itself is untouched
  });

  it('replaces a payload larger than the cap by a marker', () => {
    const p = payloadPolicy({
      arguments: true,
      results: false,
      redactPaths: [],
      redactFields: [],
      maxBytes: 50,
    });
    expect(JSON.parse(p.render({ x: 'y'.repeat(100) }, true))).toEqual({ $truncated: 108 });
  });

  it('pseudonyms are keyed and stable; queries by the raw value find them', () => {
    expect(pseudonym('k1', 'alice')).toBe(pseudonym('k1', 'alice'));
    expect(pseudonym('k1', 'alice')).not.toBe(pseudonym('k2', 'alice'));
    expect(pseudonym('k1', 'alice')).toMatch(/^ps_[A-Za-z0-9_-]{22}$/);
    const priv = sinkPrivacy({
      pseudonymize: { key: 'k1', fields: ['user_id', 'client_ip'] },
      omit: ['user_agent', 'arguments'],
    });
    const r = priv.apply({ ...recordOf(event(), undefined).row(), arguments: '{}' });
    expect(r.user_id).toBe(pseudonym('k1', 'alice'));
    expect(r.client_ip).toBe(pseudonym('k1', '10.0.0.1'));
    expect(r.user_agent).toBeNull();
    expect(r.arguments).toBeNull();
    expect(r.agent_identity).toBe('bot');
    expect(priv.stored('user_id', 'alice')).toBe(r.user_id);
    expect(priv.stored('agent_identity', 'bot')).toBe('bot');
  });
});

describe('the hash chain', () => {
  const rows = () => Array.from({ length: 5 }, (_, i) => row(i));
  const genesis = (seq: number) =>
    seq === 1 ? { seq: 0, hash: GENESIS, kind: 'genesis' as const } : undefined;

  it('links rows after a tip and verifies', async () => {
    const chain = link(rows(), { seq: 0, hash: GENESIS });
    expect(chain.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(chain[0]!.prev_hash).toBe(GENESIS);
    expect(chain[3]!.prev_hash).toBe(chain[2]!.hash);
    expect(chain[2]!.hash).toBe(recordHash(chain[2]!));
    const v = await verifyChain(chain, genesis);
    expect(v).toMatchObject({ ok: true, checked: 5, first: 1, last: 5, lastHash: chain[4]!.hash });
  });

  it('the canonical form covers every column but the hash, nulls explicit', () => {
    const [r] = link([row(1)], { seq: 0, hash: GENESIS });
    const values = JSON.parse(canonical(r!)) as unknown[];
    expect(values).toHaveLength(COLUMNS.length - 1);
    expect(values[0]).toBe(1);
    expect(values[values.length - 1]).toBe(GENESIS);
  });

  it('detects an altered field, a removed record, a reordering and a rewritten link', async () => {
    const base = () => link(rows(), { seq: 0, hash: GENESIS });
    const altered = base();
    altered[2] = { ...altered[2]!, decision: 'deny' };
    expect((await verifyChain(altered, genesis)).broken).toMatchObject({
      seq: 3,
      problem: expect.stringContaining('altered'),
    });

    const removed = base();
    removed.splice(1, 1);
    expect((await verifyChain(removed, genesis)).broken).toMatchObject({
      seq: 3,
      problem: 'record 2 missing',
    });

    const swapped = base();
    [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
    expect((await verifyChain(swapped, genesis)).ok).toBe(false);

    // Removing a record and renumbering: the next one's prev_hash gives it away.
    const renumbered = base();
    renumbered.splice(1, 1);
    for (let i = 1; i < renumbered.length; i++) renumbered[i] = { ...renumbered[i]!, seq: i + 1 };
    expect((await verifyChain(renumbered, genesis)).broken).toMatchObject({
      seq: 2,
      problem: expect.stringContaining('prev_hash'),
    });
  });

  it('a range after a purge is anchored at the checkpoint; without one, the missing head is reported', async () => {
    const chain = link(rows(), { seq: 0, hash: GENESIS });
    const tail = chain.slice(2);
    const cp = { seq: 2, hash: chain[1]!.hash, kind: 'checkpoint' as const };
    expect(await verifyChain(tail, (s) => (s === 3 ? cp : undefined))).toMatchObject({
      ok: true,
      checked: 3,
      anchor: cp,
    });
    expect((await verifyChain(tail, genesis)).broken?.problem).toContain('before seq 3 are missing');
    // A forged checkpoint does not match the records.
    const forged = { ...cp, hash: 'f'.repeat(64) };
    expect((await verifyChain(tail, () => forged)).ok).toBe(false);
  });
});

describe('queries', () => {
  const now = T0;

  it('times: a duration back, a date, epoch ms', () => {
    expect(parseTime('1h', now, 'since')).toBe(now - 3_600_000);
    expect(parseTime('7d', now, 'since')).toBe(now - 7 * 86_400_000);
    expect(parseTime('2026-01-30T00:00:00Z', now, 'since')).toBe(Date.UTC(2026, 0, 30));
    expect(parseTime(String(now), now, 'since')).toBe(now);
    expect(() => parseTime('yesterday', now, 'since')).toThrow(/since: "yesterday"/);
  });

  it('filters: names, decision values, order of since/until', () => {
    const q: Record<string, string> = {
      since: '1h',
      user: 'alice',
      tool: 't',
      decision: 'deny',
      route: '/mcp',
    };
    expect(parseFilter((k) => q[k], now)).toEqual({
      since: now - 3_600_000,
      user: 'alice',
      tool: 't',
      decision: 'deny',
      route: '/mcp',
    });
    expect(() => parseFilter((k) => ({ decision: 'maybe' })[k], now)).toThrow(/decision/);
    expect(() => parseFilter((k) => ({ since: '1h', until: '2h' })[k], now)).toThrow(/after/);
  });

  it('cursors round-trip and refuse what they did not make', () => {
    expect(decodeCursor(encodeCursor(42))).toBe(42);
    expect(() => decodeCursor('bm9wZQ')).toThrow(RangeError);
  });

  it('records shown as a table and as JSON', () => {
    const [r] = link([recordOf(event({ outcome: 'denied', reason: 'no' }), undefined).row()], {
      seq: 0,
      hash: GENESIS,
    });
    const table = formatTable([r!]);
    expect(table.split('\n')[0]).toMatch(
      /^TIME\s+USER\s+AGENT\s+ROUTE\s+SERVER\s+METHOD\s+TARGET\s+DECISION/,
    );
    expect(table).toContain('cancel-order');
    expect(table).toContain('deny');
    const shown = presentRecord({ ...r!, arguments: '{"a":1}' } as StoredRecord);
    expect(shown).toMatchObject({ time: new Date(T0).toISOString(), arguments: { a: 1 }, seq: 1 });
  });
});

describe('the spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-spool-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps records in order, reads them back in batches, and empties itself when caught up', () => {
    const s = new Spool(join(dir, 'sink.spool'), 1 << 20);
    expect(s.append([row(1), row(2), row(3)])).toBe(true);
    expect(s.append([row(4)])).toBe(true);
    expect(s.records).toBe(4);
    const a = s.read(3)!;
    expect(a.rows.map((r) => r.ts)).toEqual([T0 + 1, T0 + 2, T0 + 3]);
    s.consume(a);
    expect(s.records).toBe(1);
    const b = s.read(3)!;
    expect(b.rows.map((r) => r.ts)).toEqual([T0 + 4]);
    s.consume(b);
    expect(s.read(3)).toBeUndefined();
    expect(readFileSync(join(dir, 'sink.spool'), 'utf8')).toBe('');
    s.close();
  });

  it('a restart replays what was not consumed, once; a line cut by a crash is dropped', () => {
    const path = join(dir, 'sink.spool');
    const s = new Spool(path, 1 << 20);
    s.append([row(1), row(2), row(3)]);
    s.consume(s.read(1)!);
    // The process dies here: the file is left, with half a line appended.
    writeFileSync(path, `${readFileSync(path, 'utf8')}{"id":"cut`);
    const again = new Spool(path, 1 << 20);
    again.recover();
    expect(again.records).toBe(2);
    expect(again.read(10)!.rows.map((r) => r.ts)).toEqual([T0 + 2, T0 + 3]);
  });

  it('refuses records when full or disabled', () => {
    const one = Buffer.byteLength(`${JSON.stringify(row(1))}\n`);
    const small = new Spool(join(dir, 'small.spool'), one * 2);
    expect(small.append([row(1)])).toBe(true);
    expect(small.append([row(2), row(3), row(4)])).toBe(false);
    expect(small.records).toBe(1);
    const off = new Spool(join(dir, 'off.spool'), 0);
    expect(off.usable()).toBe(false);
    expect(off.append([row(1)])).toBe(false);
  });

  it('a spool that cannot be written is unusable for a while, then tried again', () => {
    writeFileSync(join(dir, 'file'), 'x');
    const s = new Spool(join(dir, 'file', 'sink.spool'), 1 << 20);
    const now = Date.now();
    expect(s.append([row(1)], now)).toBe(false);
    expect(s.lastError).toBeDefined();
    expect(s.usable(now + 10)).toBe(false);
    expect(s.usable(now + 5_000)).toBe(true);
  });
});

describe('audit config', () => {
  const BASE =
    'upstreams:\n  main: { type: streamable-http, url: "http://127.0.0.1:3001/mcp" }\nroutes:\n  - path: /mcp\n    upstreams: [main]\n';
  const problems = (text: string) => {
    try {
      parseConfig(text, 't.yaml', {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    }
    throw new Error('expected the config to be refused');
  };

  it('is on by default: one SQLite sink next to the config, every route required', () => {
    const c = parseConfig(BASE, 't.yaml', {});
    expect(c.audit.enabled).toBe(true);
    expect(c.audit.sinks).toEqual([
      { type: 'sqlite', name: 'sqlite', path: 'gatehouse-audit.db', retention: 90 * 86_400_000, omit: [] },
    ]);
    expect(c.routes[0]!.audit).toBe('required');
    expect(c.routes[0]!.audit_payloads).toBeUndefined();
  });

  it('names sinks by type unless named; names must be unique', () => {
    const c = parseConfig(
      `audit: { sinks: [ { type: stdout }, { type: jsonl, name: ship } ] }\n${BASE}`,
      't.yaml',
      {},
    );
    expect(c.audit.sinks.map((s) => s.name)).toEqual(['stdout', 'ship']);
    expect(problems(`audit: { sinks: [ { type: sqlite }, { type: sqlite, path: b.db } ] }\n${BASE}`)).toEqual(
      ['audit.sinks.1.name: duplicate audit sink name "sqlite": give each sink of this type a name'],
    );
  });

  it('refuses a retention under 7 days, unknown fields, and malformed argument paths', () => {
    expect(problems(`audit: { sinks: [ { type: sqlite, retention: 6d } ] }\n${BASE}`)).toEqual([
      'audit.sinks.0.retention: retention must be at least 7d',
    ]);
    expect(problems(`audit: { sinks: [ { type: stdout, omit: [user_id] } ] }\n${BASE}`)[0]).toContain(
      'audit.sinks.0.omit.0',
    );
    expect(problems(`${BASE}    audit_payloads: { redact_paths: ["a..b"] }\n`)[0]).toContain(
      'routes.0.audit_payloads.redact_paths.0',
    );
    expect(problems(`${BASE}    audit: sometimes\n`)[0]).toContain('routes.0.audit');
  });
});

describe('the stdout sink', () => {
  it('writes one marked JSON line per record, chained from genesis', async () => {
    const { PassThrough } = await import('node:stream');
    const { StdoutAuditSink, STDOUT_TYPE } = await import('../../src/audit/sinks/stdout.ts');
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const sink = new StdoutAuditSink('stdout', out);
    await sink.write([row(1), row(2)]);
    await sink.write([row(3)]);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as StoredRecord & { type: string; time: string });
    expect(lines.map((l) => [l.type, l.seq])).toEqual([
      [STDOUT_TYPE, 1],
      [STDOUT_TYPE, 2],
      [STDOUT_TYPE, 3],
    ]);
    const records = lines.map(({ type: _t, time: _i, ...r }) => r as StoredRecord);
    expect(
      await verifyChain(records, (s) => (s === 1 ? { seq: 0, hash: GENESIS, kind: 'genesis' } : undefined)),
    ).toMatchObject({
      ok: true,
      checked: 3,
    });
  });
});
