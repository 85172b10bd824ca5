// Regressions of the fourth review (audit, metrics, tracing), on real parts: the SQLite file and the
// PostgreSQL on 127.0.0.1:5432 (database `test`, a schema of its own, dropped after).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { storable } from '../../src/audit/chain.ts';
import { sinkPrivacy } from '../../src/audit/privacy.ts';
import { decodeCursor, encodeCursor, formatTable, parseTime } from '../../src/audit/query.ts';
import { recordOf, type StoredRecord } from '../../src/audit/record.ts';
import { PgAuditStore } from '../../src/audit/sinks/postgres.ts';
import { SqliteAuditStore } from '../../src/audit/sinks/sqlite.ts';
import { Spool } from '../../src/audit/spool.ts';
import { SinkWriter } from '../../src/audit/writer.ts';
import { contentLength } from '../../src/http/request.ts';
import type { ExchangeEvent } from '../../src/telemetry/events.ts';

const PG = 'postgres://postgres@127.0.0.1:5432/test';
const privacy = sinkPrivacy({ omit: [] });

function event(over: Partial<ExchangeEvent> = {}): ExchangeEvent {
  return {
    startedAt: Date.now(),
    route: '/mcp',
    sessionId: undefined,
    subject: 'alice',
    mcpMethod: 'tools/call',
    upstream: 'shop',
    target: 'cancel',
    targetKind: 'tool',
    outcome: 'ok',
    httpStatus: 200,
    rpcCode: undefined,
    durationMs: 1,
    upstreamMs: undefined,
    requestId: 'r-1',
    ...over,
  };
}

/** Values clients (or upstreams) choose that a sink cannot store as they are. */
const hostile: Partial<ExchangeEvent>[] = [
  { target: 'nul\u0000name' },
  { target: 'lone\ud800surrogate' },
  { mcpMethod: 'x\udc00\u0000y', targetKind: undefined, target: undefined },
  { requestBytes: Number('18446744073709551615') },
  { requestBytes: Number.NaN },
  { rpcCode: 2 ** 40, outcome: 'error' },
  { durationMs: Number.POSITIVE_INFINITY },
  { userAgent: 'ua\u0000' },
];

describe('records with values a sink cannot store do not stop it, and still verify', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('SQLite: written, read back unchanged, chain intact (a lone surrogate was stored as U+FFFD)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-rr4-'));
    const s = new SqliteAuditStore('sqlite', join(dir, 'a.db'), privacy);
    for (const over of hostile) await s.write([recordOf(event(over), undefined).row()], false);
    const v = await s.verify({});
    expect(v.broken).toBeUndefined();
    expect(v.checked).toBe(hostile.length);
    const rows = await s.query({}, { limit: 100, order: 'asc' });
    expect(rows[0]!.tool_name).toBe('nul\ufffdname');
    expect(rows[1]!.tool_name).toBe('lone\ufffdsurrogate');
    expect(rows[3]!.request_bytes).toBeNull();
    await s.close();
  });

  describe('PostgreSQL', () => {
    const schema = `gh_rr4_${randomBytes(6).toString('hex')}`;
    let admin: pg.Client;
    beforeAll(async () => {
      admin = new pg.Client(PG);
      await admin.connect();
    });
    afterAll(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    });

    it('every record written (none refused by the database), chain intact', async () => {
      const s = new PgAuditStore({ name: 'pg', url: PG, schema, table: 'audit', privacy });
      try {
        for (const over of hostile) await s.write([recordOf(event(over), undefined).row()], false);
        const v = await s.verify({});
        expect(v.broken).toBeUndefined();
        expect(v.checked).toBe(hostile.length);
        const rows = await s.query({}, { limit: 100, order: 'asc' });
        expect(rows.map((r) => r.tool_name).slice(0, 2)).toEqual(['nul\ufffdname', 'lone\ufffdsurrogate']);
        expect(rows[5]!.jsonrpc_code).toBeNull();
      } finally {
        await s.close();
      }
    });
  });

  it('storable leaves ordinary rows as they are (same object)', () => {
    const row = recordOf(event({ target: 'emoji 😀 ok' }), undefined).row();
    expect(storable(row)).toBe(row);
  });
});

describe('Content-Length as recorded', () => {
  it('only plain decimals below 10^15', () => {
    expect(contentLength('120')).toBe(120);
    expect(contentLength(['7'])).toBe(7);
    expect(contentLength('18446744073709551615')).toBeUndefined();
    expect(contentLength('1e3')).toBeUndefined();
    expect(contentLength(' 1')).toBeUndefined();
    expect(contentLength(undefined)).toBeUndefined();
  });
});

describe('audit: required — calls let through before the queue filled keep their records', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('with no spool, records past the queue size wait in memory (up to twice it) instead of being lost', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-rr4-'));
    const store = new SqliteAuditStore('sqlite', join(dir, 'a.db'), privacy);
    let lost = 0;
    const w = new SinkWriter(store, {
      queueSize: 10,
      batchSize: 5,
      flushIntervalMs: 5,
      spool: new Spool(join(dir, 'spool', 'sqlite.spool'), 0),
      privacy,
      logger: pino({ level: 'silent' }),
      onLost: () => {
        lost++;
      },
    });
    w.start();
    // 15 calls admitted while the queue had room, all finishing in one turn of the event loop.
    const admitted = Array.from({ length: 15 }, () => w.admits());
    expect(admitted.every(Boolean)).toBe(true);
    for (let i = 0; i < 15; i++)
      expect(w.push(recordOf(event({ requestId: `r-${i}` }), undefined))).toBe(true);
    expect(w.admits()).toBe(false); // new calls are refused now
    expect(lost).toBe(0);
    expect(await w.drain(5_000)).toBe(true);
    await w.close(1_000);
    const check = new SqliteAuditStore('sqlite', join(dir, 'a.db'), privacy);
    expect((await check.verify({})).checked).toBe(15);
    await check.close();
  });
});

describe('CLI and admin query inputs', () => {
  it('the table escapes terminal control characters and line breaks of client-chosen text', () => {
    const r = {
      ...recordOf(event({ target: '\u001b[2J\u001b[31mevil\nforged row' }), undefined).row(),
      seq: 1,
      prev_hash: '0',
      hash: '0',
    } as StoredRecord;
    const out = formatTable([r]);
    expect(out).not.toContain('\u001b');
    expect(out.trimEnd().split('\n')).toHaveLength(2);
    expect(out).toContain('\\u001b[2J');
  });

  it('a cursor or epoch beyond what the stores can take is a bad request, not a database error', () => {
    expect(decodeCursor(encodeCursor(42))).toBe(42);
    expect(() => decodeCursor(Buffer.from(`seq:${'9'.repeat(30)}`).toString('base64url'))).toThrow(
      RangeError,
    );
    expect(() => parseTime('9'.repeat(30), Date.now(), 'since')).toThrow(RangeError);
    expect(parseTime('1769860800000', 0, 'since')).toBe(1769860800000);
  });
});
