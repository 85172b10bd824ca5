// W3C trace context parsing (what may be forwarded to upstreams) and the _meta injection.

import { describe, expect, it } from 'vitest';
import {
  parseTraceparent,
  parseTracestate,
  traceContext,
  withTraceMeta,
} from '../../src/telemetry/tracing.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('accepts version 00 exactly, and reads a later version as 00', () => {
    expect(parseTraceparent(`00-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, flags: 1 });
    expect(parseTraceparent(`00-${T}-${S}-00`)?.flags).toBe(0);
    expect(parseTraceparent(`01-${T}-${S}-01-future-part`)).toEqual({ traceId: T, spanId: S, flags: 1 });
    expect(traceContext(`01-${T}-${S}-03-x`, undefined)?.traceparent).toBe(`00-${T}-${S}-01`);
  });

  it.each([
    ['uppercase hex', `00-${T.toUpperCase()}-${S}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${S}-01`],
    ['all-zero span id', `00-${T}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${T}-${S}-01`],
    ['version 00 with a tail', `00-${T}-${S}-01-x`],
    ['a later version with a tail not after a dash', `01-${T}-${S}-01x`],
    ['short trace id', `00-${T.slice(1)}-${S}-01`],
    ['two headers joined', `00-${T}-${S}-01, 00-${T}-${S}-01`],
    ['CRLF', `00-${T}-${S}-01\r\nx-evil: 1`],
    ['not a string', 42],
  ])('refuses %s', (_what, v) => {
    expect(parseTraceparent(v)).toBeUndefined();
  });
});

describe('tracestate', () => {
  it('keeps valid lists, trimmed', () => {
    expect(parseTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE')).toBe(
      'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    );
    expect(parseTracestate('tenant@vendor=x')).toBe('tenant@vendor=x');
  });

  it.each([
    ['a key with uppercase', 'Rojo=1'],
    ['a value with a comma-less equals', 'a=b=c'],
    ['a control character', 'a=b\nc'],
    ['more than 32 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['more than 512 characters', `a=${'x'.repeat(520)}`],
    ['nothing', ' , '],
  ])('refuses %s', (_what, v) => {
    expect(parseTracestate(v)).toBeUndefined();
  });
});

describe('withTraceMeta', () => {
  const req = { jsonrpc: '2.0' as const, id: 1, method: 'tools/call', params: { name: 'x' } };

  it('adds the context to params._meta, keeping the rest of it, without touching the original', () => {
    const withToken = { ...req, params: { ...req.params, _meta: { progressToken: 7, tracestate: 'old=1' } } };
    const out = withTraceMeta(withToken, `00-${T}-${S}-01`, undefined);
    expect(out.params).toEqual({ name: 'x', _meta: { progressToken: 7, traceparent: `00-${T}-${S}-01` } });
    expect(withToken.params._meta).toEqual({ progressToken: 7, tracestate: 'old=1' });
  });

  it('returns the request itself when it already carries that context, and adds params when it has none', () => {
    const tp = `00-${T}-${S}-01`;
    const carrying = { ...req, params: { name: 'x', _meta: { traceparent: tp, tracestate: 'a=1' } } };
    expect(withTraceMeta(carrying, tp, 'a=1')).toBe(carrying);
    expect(withTraceMeta({ jsonrpc: '2.0', id: 2, method: 'm' }, tp, 'a=1').params).toEqual({
      _meta: { traceparent: tp, tracestate: 'a=1' },
    });
  });
});
