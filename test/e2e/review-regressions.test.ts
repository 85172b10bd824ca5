// Regressions of bugs found in review: each test failed before its fix.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hang,
  type MisbehavingUpstream,
  startMisbehavingUpstream,
  type ToolHandler,
} from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';

type Msg = Record<string, unknown>;
const VERSION = '2025-11-25';

/** An SDK-style 400 with `id: null` for an invalid argument. */
const refuseWithNullId: ToolHandler = (call) => {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: null,
    error: { code: -32602, message: 'tool argument x is required' },
  });
  call.res.writeHead(400, { 'content-type': 'application/json' });
  call.res.end(body);
};

/** Sends the client a sampling request, then cancels it (notifications/cancelled with its own id), then answers. */
const askThenCancel: ToolHandler = (call) => {
  call.res.writeHead(200, { 'content-type': 'text/event-stream' });
  const send = (m: Msg) => call.res.write(`data: ${JSON.stringify(m)}\n\n`);
  send({ jsonrpc: '2.0', id: 77, method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } });
  send({
    jsonrpc: '2.0',
    method: 'notifications/cancelled',
    params: { requestId: 77, reason: 'changed my mind' },
  });
  send({ jsonrpc: '2.0', id: call.id, result: { content: [{ type: 'text', text: 'done' }] } });
  call.res.end();
};

async function post(
  url: string,
  body: Msg,
  sid?: string,
): Promise<{ status: number; text: string; sid: string | null }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (sid) {
    headers['mcp-session-id'] = sid;
    headers['mcp-protocol-version'] = VERSION;
  }
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text(), sid: res.headers.get('mcp-session-id') };
}

async function session(url: string, capabilities: Msg = {}): Promise<string> {
  const init = { protocolVersion: VERSION, capabilities, clientInfo: { name: 'regressions', version: '1' } };
  const r = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: init });
  expect(r.status, r.text).toBe(200);
  return r.sid!;
}

const call = (id: number, name: string) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {} },
});

describe('review regressions', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({
      tools: { hang, refuse: refuseWithNullId, ask: askThenCancel },
    });
    gw = await startGateway(
      singleUpstreamConfig(upstream.url).replace(
        `url: "${upstream.url}"`,
        `url: "${upstream.url}", request_timeout: 300ms`,
      ),
    );
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('a request that times out is cancelled upstream with the upstream id of the call', async () => {
    const sid = await session(url);
    const r = await post(url, call(1, 'hang'), sid);
    expect(r.text).toContain('-32003');
    const posted = () => upstream.received.filter((x) => x.httpMethod === 'POST').map((x) => x.body as Msg);
    await expect
      .poll(() => posted().some((b) => b.method === 'notifications/cancelled'), { timeout: 3000 })
      .toBe(true);
    const hung = posted().findLast((b) => b.method === 'tools/call' && (b.params as Msg).name === 'hang')!;
    const cancel = posted().findLast((b) => b.method === 'notifications/cancelled')!;
    expect((cancel.params as Msg).requestId).toBe(hung.id);
  });

  it('a timeout or a client DELETE does not mark the upstream down', async () => {
    const sid = await session(url);
    await post(url, call(1, 'hang'), sid);
    const inflight = post(url, call(2, 'hang'), sid);
    await new Promise((r) => setTimeout(r, 50));
    await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
    await inflight;
    const ready = (await (await fetch(`${gw.base}/readyz`)).json()) as {
      upstreams: Record<string, { status: string }>;
    };
    expect(ready.upstreams.up?.status).not.toBe('down');
  });

  it("an upstream's JSON-RPC error with id null (SDK servers' 4xx) reaches the client with its own id and message", async () => {
    const sid = await session(url);
    const r = await post(url, call(5, 'refuse'), sid);
    const m = JSON.parse(r.text) as Msg;
    expect(m.id).toBe(5);
    expect(m.error).toEqual({ code: -32602, message: 'tool argument x is required' });
  });

  it("an upstream's cancellation of its own server→client request names the id the client saw", async () => {
    const sid = await session(url, { sampling: {} });
    const r = await post(url, call(6, 'ask'), sid);
    const messages = r.text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)) as Msg);
    const ask = messages.find((m) => m.method === 'sampling/createMessage')!;
    const cancel = messages.find((m) => m.method === 'notifications/cancelled')!;
    expect(typeof ask.id).toBe('string');
    expect((cancel.params as Msg).requestId).toBe(ask.id);
    expect(messages.at(-1)).toMatchObject({ id: 6, result: { content: [{ type: 'text', text: 'done' }] } });
  });
});
