// The SSE codec: the encoder must never let message content forge a field, and the decoder must give the
// same events however the stream is cut into chunks.

import { describe, expect, it } from 'vitest';
import { encodeSseEvent, SseDecoder, type SseEvent } from '../../src/mcp/sse.ts';

function decode(
  chunks: readonly string[],
  maxEventBytes = 1 << 20,
): { events: SseEvent[]; decoder: SseDecoder } {
  const events: SseEvent[] = [];
  const decoder = new SseDecoder((e) => events.push(e), maxEventBytes);
  for (const c of chunks) decoder.push(c);
  return { events, decoder };
}

/** Every way of cutting `text` into two chunks, plus one character per chunk. */
function splits(text: string): string[][] {
  const out: string[][] = [];
  for (let i = 0; i <= text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  out.push([...text]);
  return out;
}

describe('encodeSseEvent', () => {
  it('encodes one data line and ends the event with a blank line', () => {
    expect(encodeSseEvent('{"a":1}')).toBe('data: {"a":1}\n\n');
  });

  it('writes event and id fields before data', () => {
    expect(encodeSseEvent('x', '7', 'message')).toBe('event: message\nid: 7\ndata: x\n\n');
  });

  it('writes an empty id (which resets the last event id) but no empty event name', () => {
    expect(encodeSseEvent('x', '', '')).toBe('id: \ndata: x\n\n');
  });

  it.each([
    ['LF', 'a\nevent: evil\nid: 666\n\ndata: injected'],
    ['CR', 'a\revent: evil\rid: 666\r\rdata: injected'],
    ['CRLF', 'a\r\nevent: evil\r\nid: 666\r\n\r\ndata: injected'],
    ['mixed', 'a\r\n\revent: evil\n\rid: 666'],
  ])(
    'turns every %s line break of data into a data line, so data cannot forge a field or an event',
    (_name, data) => {
      const wire = encodeSseEvent(data);
      for (const line of wire.split('\n').slice(0, -2)) expect(line).toMatch(/^data: /);
      expect(wire).not.toMatch(/\r/);
      const { events } = decode([wire]);
      expect(events).toHaveLength(1);
      expect(events[0]!.event).toBe('message');
      expect(events[0]!.id).toBeUndefined();
      expect(events[0]!.data).toBe(data.replace(/\r\n|\r/g, '\n'));
    },
  );

  it('round-trips JSON (whose newlines are escaped) unchanged', () => {
    const msg = JSON.stringify({
      jsonrpc: '2.0',
      method: 'x',
      params: { text: 'line1\nline2\r\n', emoji: '✓' },
    });
    const { events } = decode([encodeSseEvent(msg, '42')]);
    expect(events).toEqual([{ event: 'message', data: msg, id: '42' }]);
    expect(JSON.parse(events[0]!.data)).toEqual(JSON.parse(msg));
  });

  it('keeps leading spaces and colons of data', () => {
    const { events } = decode([encodeSseEvent('  x: y\n:not a comment')]);
    expect(events[0]!.data).toBe('  x: y\n:not a comment');
  });

  // A line break in `id` or `event` must not forge fields or events.
  it('never lets a line break in id or event forge a field', () => {
    const wire = encodeSseEvent('x', '1\ndata: forged\n\nid: 2', 'message\nretry: 1');
    const { events } = decode([wire]);
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toBe('x');
    expect(events[0]!.retry).toBeUndefined();
  });
});

describe('SseDecoder', () => {
  const stream =
    ': a comment first\n' +
    'event: message\n' +
    'id: 1\n' +
    'data: {"a":1}\n' +
    '\n' +
    'data: line one\r\n' +
    'data: line two\r\n' +
    'id: 2\r\n' +
    'retry: 3000\r\n' +
    '\r\n' +
    'event: custom\r' +
    'data:no space\r' +
    ':comment\r' +
    '\r' +
    'data: last\n\n';
  const expected: SseEvent[] = [
    { event: 'message', data: '{"a":1}', id: '1' },
    { event: 'message', data: 'line one\nline two', id: '2', retry: 3000 },
    { event: 'custom', data: 'no space' },
    { event: 'message', data: 'last' },
  ];

  it('decodes LF, CRLF and CR line endings, comments, id, retry and multi-line data', () => {
    expect(decode([stream]).events).toEqual(expected);
  });

  it('gives the same events whatever the chunk boundaries (including between \\r and \\n)', () => {
    for (const chunks of splits(stream)) {
      expect(decode(chunks).events, JSON.stringify(chunks.slice(0, 2))).toEqual(expected);
    }
  });

  it('treats \\r then \\n in the next chunk as one line break, not two', () => {
    const { events } = decode(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
    expect(events).toEqual([{ event: 'message', data: 'a\nb' }]);
  });

  it('does not dispatch an event before its blank line arrives', () => {
    const events: SseEvent[] = [];
    const d = new SseDecoder((e) => events.push(e), 1000);
    d.push('data: x\n');
    expect(events).toHaveLength(0);
    d.push('\n');
    expect(events).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('ignores comments, unknown fields and blank lines between events', () => {
    const { events } = decode([':keepalive\n\n\n:another\nfoo: bar\nDATA: upper\n\ndata: y\n\n']);
    expect(events).toEqual([{ event: 'message', data: 'y' }]);
  });

  it('strips exactly one space after the colon, and treats a line without colon as a field with empty value', () => {
    const { events } = decode(['data:  two spaces\ndata\n\n']);
    expect(events).toEqual([{ event: 'message', data: ' two spaces\n' }]);
  });

  it('dispatches an empty data field as an event with empty data', () => {
    expect(decode(['data:\n\n']).events).toEqual([{ event: 'message', data: '' }]);
  });

  it('dispatches an id-only event (the MCP priming event) and remembers the last event id', () => {
    const { events, decoder } = decode(['id: prime-1\n\n']);
    expect(events).toEqual([{ event: 'message', data: '', id: 'prime-1' }]);
    expect(decoder.lastEventId).toBe('prime-1');
  });

  it('keeps the last event id across events without one, and ignores an id containing NUL', () => {
    const { events, decoder } = decode(['id: a\ndata: 1\n\ndata: 2\n\nid: b\0c\ndata: 3\n\n']);
    expect(events.map((e) => e.id)).toEqual(['a', undefined, undefined]);
    expect(decoder.lastEventId).toBe('a');
    expect(decode([]).decoder.lastEventId).toBeUndefined();
  });

  it('ignores a retry that is not all ASCII digits', () => {
    const { events } = decode([
      'retry: 10s\ndata: a\n\nretry: -1\ndata: b\n\nretry: 1.5\ndata: c\n\nretry: 250\ndata: d\n\n',
    ]);
    expect(events.map((e) => e.retry)).toEqual([undefined, undefined, undefined, 250]);
  });

  it('resets the event name after each event', () => {
    const { events } = decode(['event: a\ndata: 1\n\ndata: 2\n\n']);
    expect(events.map((e) => e.event)).toEqual(['a', 'message']);
  });

  it('does not dispatch an event that only has a name', () => {
    expect(decode(['event: x\n\n']).events).toEqual([]);
  });

  it('keeps non-ASCII text intact across chunks', () => {
    const { events } = decode(['data: h\u00e9llo \u{1F600}', ' w\u00f6rld\n', '\n']);
    expect(events[0]!.data).toBe('h\u00e9llo \u{1F600} w\u00f6rld');
  });

  describe('size bound', () => {
    it('throws RangeError when one data line exceeds the bound', () => {
      const d = new SseDecoder(() => {}, 16);
      expect(() => d.push(`data: ${'x'.repeat(17)}\n`)).toThrow(RangeError);
    });

    it('throws RangeError when many data lines of one event add up past the bound', () => {
      const d = new SseDecoder(() => {}, 16);
      d.push('data: 12345\n');
      d.push('data: 12345\n');
      d.push('data: 12345\n');
      expect(() => d.push('data: 12\n')).toThrow(/SSE event larger than 16 characters/);
    });

    it('throws RangeError when a line without a line break grows past the bound', () => {
      const d = new SseDecoder(() => {}, 64);
      d.push('data: ');
      expect(() => {
        for (let i = 0; i < 100; i++) d.push('xxxxxxxx');
      }).toThrow(RangeError);
    });

    it('accepts an event exactly at the bound, and counts each event afresh', () => {
      const events: SseEvent[] = [];
      const d = new SseDecoder((e) => events.push(e), 16);
      for (let i = 0; i < 50; i++) d.push(`data: ${'y'.repeat(16)}\n\n`);
      expect(events).toHaveLength(50);
      expect(events[0]!.data).toHaveLength(16);
    });
  });

  // WHATWG parsers end the line at \r and skip a following \n, even one that arrives in the next chunk.
  it('dispatches a CR-terminated event without waiting for the next chunk', () => {
    expect(decode(['data: x\r\r']).events).toEqual([{ event: 'message', data: 'x' }]);
  });

  // WHATWG: one leading U+FEFF is ignored.
  it('ignores a byte order mark at the start of the stream', () => {
    expect(decode(['\uFEFFdata: first\n\n']).events).toEqual([{ event: 'message', data: 'first' }]);
  });

  // `retry` is a stream setting (WHATWG sets the reconnection time as soon as the field is read), so one
  // sent in a block of its own is kept by the decoder even though no event is dispatched.
  it('keeps a retry sent in a block of its own', () => {
    const { events, decoder } = decode(['retry: 5000\n\n']);
    expect(events).toEqual([]);
    expect(decoder.retry).toBe(5000);
  });

  it('does not take a CR-terminated line for two line ends when the LF arrives in the next chunk', () => {
    expect(decode(['data: a\r', '\ndata: b\r\n\r\n']).events).toEqual([{ event: 'message', data: 'a\nb' }]);
  });
});

describe('SseDecoder.reset (a stream resumed on a new connection)', () => {
  it('drops the half-received line and event of the broken connection, keeping the last id and retry', () => {
    const { events, decoder } = decode(['retry: 700\nid: 7\ndata: {"a":1}\n\n', 'id: 8\ndata: {"half']);
    expect(events).toHaveLength(1);
    decoder.reset();
    decoder.push('data: {"b":2}\n\n');
    expect(events.map((e) => e.data)).toEqual(['{"a":1}', '{"b":2}']);
    expect(decoder.lastEventId).toBe('7');
    expect(decoder.retry).toBe(700);
  });

  it('parses a single 4 MiB line fed in small chunks', () => {
    const { events, decoder } = decode([], 8 << 20);
    decoder.push('data: ');
    const chunk = 'y'.repeat(4096);
    for (let i = 0; i < 1024; i++) decoder.push(chunk);
    decoder.push('\n\n');
    expect(events).toHaveLength(1);
    expect(events[0]!.data.length).toBe(4 << 20);
  });
});
