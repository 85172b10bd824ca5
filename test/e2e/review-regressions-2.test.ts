// Regressions of bugs found in the second review (aggregation and transports): each failed before its fix.

import { afterEach, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

type Msg = Record<string, unknown>;
const FIXTURE = new URL('../fixtures/stdio-server.ts', import.meta.url).pathname;
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function init(url: string, capabilities: Msg = {}): Promise<string> {
  const r = await fetch(url, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities, clientInfo: { name: 'r2', version: '1' } },
    }),
  });
  expect(r.status).toBe(200);
  return r.headers.get('mcp-session-id')!;
}

function post(url: string, sid: string, msg: Msg): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': sid },
    body: JSON.stringify(msg),
  });
}

/** Reads an SSE answer until `until` matches what was read so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  until: (text: string) => boolean,
  sofar = '',
): Promise<string> {
  let text = sofar;
  while (!until(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  return text;
}

const stdioRoute = (mode: string, extra = '') => `
upstreams:
  fx: { type: stdio, mode: ${mode}, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE)}] }
routes:
  - path: /mcp
    upstreams: [fx]
health: { interval: 0 }
${extra}`;

describe('second review regressions', () => {
  let gw: RunningGateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it("a client cannot answer another session's server→client request by forging its id (shared stdio)", async () => {
    gw = await startGateway(stdioRoute('shared'));
    const url = `${gw.base}/mcp`;
    const a = await init(url, { sampling: {} });
    const b = await init(url, {});
    const res = await post(url, a, {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'sample', arguments: { prompt: 'A only' } },
    });
    const reader = res.body!.getReader();
    const seen = await readUntil(reader, (t) => t.includes('sampling/createMessage'));
    const ask = JSON.parse(
      seen
        .split('\n')
        .find((l) => l.includes('sampling/createMessage'))!
        .slice(6),
    ) as { id: string };
    // B knows the plain form a shared process's request id takes, and even A's real id: neither works.
    const plain = `gh1.${Buffer.from(JSON.stringify(['fx', 'fixture-1'])).toString('base64url')}`;
    for (const forged of [plain, ask.id]) {
      await post(url, b, {
        jsonrpc: '2.0',
        id: forged,
        result: { model: 'evil', role: 'assistant', content: { type: 'text', text: 'B' } },
      });
    }
    await post(url, a, {
      jsonrpc: '2.0',
      id: ask.id,
      result: { model: 'honest', role: 'assistant', content: { type: 'text', text: 'A' } },
    });
    const all = await readUntil(reader, (t) => t.includes('"id":7'), seen);
    expect(all).toContain('honest');
    expect(all).not.toContain('evil');
  });

  it('the idle sweep never ends a session with a request in flight', async () => {
    gw = await startGateway(stdioRoute('per-session', 'sessions: { idle_timeout: 300ms }'));
    const url = `${gw.base}/mcp`;
    const sid = await init(url);
    const r = await post(url, sid, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'slow', arguments: { ms: 1600 } },
    });
    const text = await r.text();
    expect(text).not.toContain('"error"');
    expect(text).toContain('"id":1');
  });

  it('a legacy SSE stream that never initializes does not hold shutdown open', async () => {
    gw = await startGateway(stdioRoute('shared', 'shutdown_timeout: 10s'));
    const stream = await fetch(`${gw.base}/mcp/sse`, { headers: { accept: 'text/event-stream' } });
    expect(stream.status).toBe(200);
    const t0 = performance.now();
    await gw.close();
    gw = undefined;
    expect(performance.now() - t0).toBeLessThan(5_000);
    await stream.body?.cancel().catch(() => {});
  });

  it('tasks are refused on a shared stdio upstream (one process cannot keep clients apart)', async () => {
    gw = await startGateway(stdioRoute('shared'));
    const url = `${gw.base}/mcp`;
    const sid = await init(url);
    const r = await post(url, sid, { jsonrpc: '2.0', id: 3, method: 'tasks/list', params: {} });
    const m = JSON.parse(await r.text()) as { error?: { code: number; message: string } };
    expect(m.error?.code).toBe(-32601);
    expect(m.error?.message).toContain('shared');
  });
});
