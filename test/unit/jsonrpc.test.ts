// JSON-RPC parsing at the edge: exactly one message or a batch, or a precise reason and the right code.

import { describe, expect, it } from 'vitest';
import {
  ErrorCode,
  errorResponse,
  idKey,
  invalidMessageReason,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  parseBody,
} from '../../src/mcp/jsonrpc.ts';

describe('invalidMessageReason', () => {
  it.each<[string, unknown]>([
    ['a request', { jsonrpc: '2.0', id: 1, method: 'tools/list' }],
    [
      'a request with a string id and params',
      { jsonrpc: '2.0', id: 'abc', method: 'tools/call', params: { name: 'x' } },
    ],
    ['a request with id 0', { jsonrpc: '2.0', id: 0, method: 'ping' }],
    ['a request with a negative id', { jsonrpc: '2.0', id: -5, method: 'ping' }],
    ['a request with an empty string id', { jsonrpc: '2.0', id: '', method: 'ping' }],
    ['a notification', { jsonrpc: '2.0', method: 'notifications/initialized' }],
    [
      'a notification with params',
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } },
    ],
    ['a success response', { jsonrpc: '2.0', id: 1, result: {} }],
    ['an error response', { jsonrpc: '2.0', id: 'x', error: { code: -32601, message: 'Method not found' } }],
    [
      'an error response with data',
      { jsonrpc: '2.0', id: 2, error: { code: -32000, message: 'm', data: [1] } },
    ],
  ])('accepts %s', (_name, message) => {
    expect(invalidMessageReason(message)).toBeUndefined();
  });

  it.each<[string, unknown, RegExp]>([
    ['null', null, /must be a JSON object/],
    ['a string', 'hello', /must be a JSON object/],
    ['a number', 42, /must be a JSON object/],
    ['an array', [{ jsonrpc: '2.0', method: 'ping' }], /must be a JSON object/],
    ['a missing jsonrpc', { id: 1, method: 'ping' }, /"jsonrpc" must be exactly "2.0"/],
    ['jsonrpc 1.0', { jsonrpc: '1.0', id: 1, method: 'ping' }, /"jsonrpc" must be exactly "2.0"/],
    ['jsonrpc as a number', { jsonrpc: 2.0, id: 1, method: 'ping' }, /"jsonrpc" must be exactly "2.0"/],
    [
      'a null id on a request',
      { jsonrpc: '2.0', id: null, method: 'ping' },
      /"id" must be a string or an integer/,
    ],
    ['a fractional id', { jsonrpc: '2.0', id: 1.5, method: 'ping' }, /"id" must be a string or an integer/],
    ['an object id', { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, /"id" must be a string or an integer/],
    ['a boolean id', { jsonrpc: '2.0', id: true, result: {} }, /"id" must be a string or an integer/],
    ['an empty method', { jsonrpc: '2.0', id: 1, method: '' }, /"method" must be a non-empty string/],
    ['a numeric method', { jsonrpc: '2.0', id: 1, method: 7 }, /"method" must be a non-empty string/],
    ['array params', { jsonrpc: '2.0', id: 1, method: 'm', params: [1, 2] }, /"params" must be an object/],
    ['null params', { jsonrpc: '2.0', id: 1, method: 'm', params: null }, /"params" must be an object/],
    ['string params', { jsonrpc: '2.0', method: 'm', params: 'x' }, /"params" must be an object/],
    [
      'method and result',
      { jsonrpc: '2.0', id: 1, method: 'm', result: {} },
      /both "method" and "result"\/"error"/,
    ],
    [
      'method and error',
      { jsonrpc: '2.0', id: 1, method: 'm', error: { code: 1, message: 'x' } },
      /both "method"/,
    ],
    ['neither method nor id', { jsonrpc: '2.0', result: {} }, /needs "method"/],
    ['an empty object with jsonrpc', { jsonrpc: '2.0' }, /needs "method"/],
    ['an id with neither result nor error', { jsonrpc: '2.0', id: 1 }, /exactly one of "result" and "error"/],
    [
      'both result and error',
      { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } },
      /exactly one of "result" and "error"/,
    ],
    ['an array result', { jsonrpc: '2.0', id: 1, result: [] }, /"result" must be an object/],
    ['a null result', { jsonrpc: '2.0', id: 1, result: null }, /"result" must be an object/],
    ['a string result', { jsonrpc: '2.0', id: 1, result: 'ok' }, /"result" must be an object/],
    ['a null error', { jsonrpc: '2.0', id: 1, error: null }, /"error" must be an object/],
    ['an error without code', { jsonrpc: '2.0', id: 1, error: { message: 'x' } }, /integer "code"/],
    [
      'an error with a fractional code',
      { jsonrpc: '2.0', id: 1, error: { code: 1.5, message: 'x' } },
      /integer "code"/,
    ],
    [
      'an error with a string code',
      { jsonrpc: '2.0', id: 1, error: { code: '-32600', message: 'x' } },
      /integer "code"/,
    ],
    ['an error without message', { jsonrpc: '2.0', id: 1, error: { code: -32600 } }, /string "message"/],
  ])('refuses %s', (_name, message, reason) => {
    expect(invalidMessageReason(message)).toMatch(reason);
  });
});

describe('parseBody', () => {
  it('parses one request without treating it as a batch', () => {
    const parsed = parseBody(
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}',
    );
    expect(parsed).toEqual({
      ok: true,
      batch: false,
      messages: [{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25' } }],
    });
  });

  it('keeps the parsed object as is (no rebuilding, unknown members preserved)', () => {
    const parsed = parseBody(
      '{"jsonrpc":"2.0","id":"a","method":"x","params":{"_meta":{"k":1}},"extra":true}',
    );
    expect(parsed.ok && parsed.messages[0]).toEqual({
      jsonrpc: '2.0',
      id: 'a',
      method: 'x',
      params: { _meta: { k: 1 } },
      extra: true,
    });
  });

  it('parses a batch of mixed messages in order', () => {
    const parsed = parseBody(
      JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'a' },
        { jsonrpc: '2.0', method: 'notifications/b' },
        { jsonrpc: '2.0', id: 's', result: {} },
      ]),
    );
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.batch).toBe(true);
    expect(parsed.messages.map((m) => ('method' in m ? m.method : 'response'))).toEqual([
      'a',
      'notifications/b',
      'response',
    ]);
  });

  it('answers a parse error (-32700) with the parser reason', () => {
    const parsed = parseBody('{"jsonrpc":"2.0",');
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.code).toBe(ErrorCode.ParseError);
    expect(parsed.code).toBe(-32700);
    expect(parsed.message).toMatch(/^Parse error: /);
  });

  it.each(['', '   ', 'undefined', "{'single':'quotes'}", '{"a":1}garbage'])(
    'refuses non-JSON %j with -32700',
    (text) => {
      const parsed = parseBody(text);
      expect(parsed.ok === false && parsed.code).toBe(-32700);
    },
  );

  it('refuses an empty batch with -32600', () => {
    expect(parseBody('[]')).toEqual({ ok: false, code: -32600, message: 'Invalid Request: empty batch' });
  });

  it('names the first bad batch item by index', () => {
    const parsed = parseBody(
      JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'a' },
        { jsonrpc: '2.0', id: 2, method: 'b' },
        { id: 3 },
      ]),
    );
    expect(parsed).toEqual({
      ok: false,
      code: ErrorCode.InvalidRequest,
      message: 'Invalid Request: batch item 2: "jsonrpc" must be exactly "2.0"',
    });
  });

  it('refuses a nested batch', () => {
    const parsed = parseBody(JSON.stringify([[{ jsonrpc: '2.0', id: 1, method: 'a' }]]));
    expect(parsed.ok === false && parsed.message).toBe(
      'Invalid Request: batch item 0: a JSON-RPC message must be a JSON object',
    );
  });

  it.each<[string, string]>([
    ['null', 'null'],
    ['a number', '1'],
    ['a string', '"x"'],
    ['a null request id', '{"jsonrpc":"2.0","id":null,"method":"ping"}'],
    ['a response without result or error', '{"jsonrpc":"2.0","id":1}'],
  ])('refuses %s with -32600 and the reason', (_name, text) => {
    const parsed = parseBody(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.code).toBe(ErrorCode.InvalidRequest);
    expect(parsed.message).toMatch(/^Invalid Request: \S/);
    expect(parsed.message).toBe(`Invalid Request: ${invalidMessageReason(JSON.parse(text))}`);
  });
});

describe('message kinds', () => {
  const request: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'ping' };
  const notification: JsonRpcMessage = { jsonrpc: '2.0', method: 'notifications/initialized' };
  const response: JsonRpcMessage = { jsonrpc: '2.0', id: 1, result: {} };

  it('tells requests, notifications and responses apart', () => {
    expect([isRequest(request), isNotification(request), isResponse(request)]).toEqual([true, false, false]);
    expect([isRequest(notification), isNotification(notification), isResponse(notification)]).toEqual([
      false,
      true,
      false,
    ]);
    expect([isRequest(response), isNotification(response), isResponse(response)]).toEqual([
      false,
      false,
      true,
    ]);
  });

  it('builds error responses with data only when given', () => {
    expect(errorResponse(1, -32601, 'nope')).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32601, message: 'nope' },
    });
    expect('data' in errorResponse(null, -32600, 'x').error).toBe(false);
    expect(errorResponse('a', -32000, 'x', { why: 1 })).toEqual({
      jsonrpc: '2.0',
      id: 'a',
      error: { code: -32000, message: 'x', data: { why: 1 } },
    });
    expect(invalidMessageReason(errorResponse(7, -32000, 'x', null))).toBeUndefined();
  });
});

describe('idKey', () => {
  it('keeps the number 1 and the string "1" apart', () => {
    expect(idKey(1)).not.toBe(idKey('1'));
  });

  it('cannot be confused by a string that looks like an encoded number', () => {
    expect(idKey('n1')).not.toBe(idKey(1));
    expect(new Set([idKey(1), idKey('1'), idKey('n1'), idKey('s1')]).size).toBe(4);
  });

  it('is stable, so a Map lookup by a re-parsed id finds the entry', () => {
    const m = new Map([[idKey(42), 'a']]);
    const reparsed = JSON.parse('{"id":42}') as { id: number };
    expect(m.get(idKey(reparsed.id))).toBe('a');
    expect(idKey('abc')).toBe(idKey('abc'));
    expect(idKey(0)).not.toBe(idKey(''));
  });
});
