// Upstreams that fail in every way a network peer can: die mid-call, hang, are not there, answer
// garbage or too much, run out of concurrency, forget the session. The client always gets a JSON-RPC
// error that names the upstream, and the gateway keeps serving. Then a graceful shutdown.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answerAfter,
  destroyBeforeHeaders,
  hang,
  hangAfterProgress,
  httpErrorOversized,
  type MisbehavingUpstream,
  malformedJson,
  malformedSse,
  oversizedJson,
  oversizedJsonChunked,
  oversizedSse,
  progressThenDestroy,
  startMisbehavingUpstream,
  unreachableUrl,
} from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';
import { type Answer, type Msg, post } from '../helpers/http.ts';

function initializeBody(version: string): Msg {
  return {
    jsonrpc: '2.0',
    id: 'init',
    method: 'initialize',
    params: {
      protocolVersion: version,
      capabilities: {},
      clientInfo: { name: 'failures-test', version: '1.0.0' },
    },
  };
}

class Session {
  readonly url: string;
  readonly id: string;
  readonly version: string;
  #next = 1;

  constructor(url: string, id: string, version: string) {
    this.url = url;
    this.id = id;
    this.version = version;
  }

  static async open(url: string, version = '2025-11-25'): Promise<Session> {
    const a = await post(url, initializeBody(version));
    expect(a.status, a.text).toBe(200);
    const sid = a.headers['mcp-session-id'];
    expect(typeof sid, a.text).toBe('string');
    const s = new Session(url, sid as string, version);
    expect((await s.post({ jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);
    return s;
  }

  post(body: unknown): Promise<Answer> {
    return post(this.url, body, { 'mcp-session-id': this.id, 'mcp-protocol-version': this.version });
  }

  /** tools/call with a fresh id; returns the answer and that id. */
  async call(
    name: string,
    args: Msg = {},
    progressToken?: string,
  ): Promise<{ answer: Answer; id: number; last: Msg }> {
    const id = this.#next++;
    const params: Msg = { name, arguments: args };
    if (progressToken !== undefined) params._meta = { progressToken };
    const answer = await this.post({ jsonrpc: '2.0', id, method: 'tools/call', params });
    const last = answer.messages.at(-1);
    if (!last) throw new Error(`no JSON-RPC message in the answer (HTTP ${answer.status}): ${answer.text}`);
    return { answer, id, last };
  }

  async expectEcho(text: string): Promise<void> {
    const { answer, id, last } = await this.call('echo', { text });
    expect(answer.status).toBe(200);
    expect(last.id).toBe(id);
    expect(last.result, answer.text).toEqual({ content: [{ type: 'text', text }] });
  }
}

function errorOf(m: Msg): { code: number; message: string } {
  const e = m.error as { code: number; message: string } | undefined;
  if (!e) throw new Error(`expected a JSON-RPC error, got: ${JSON.stringify(m)}`);
  return e;
}

function gatewayConfig(url: string, upstreamOptions = '', extra = '', name = 'flaky'): string {
  return `
upstreams:
  ${name}: { type: streamable-http, url: "${url}"${upstreamOptions ? `, ${upstreamOptions}` : ''} }
routes:
  - path: /mcp
    upstreams: [${name}]
health: { interval: 0 }
${extra}`;
}

const TOOLS = {
  die_mid_stream: progressThenDestroy,
  die_before_headers: destroyBeforeHeaders,
  hang,
  hang_after_progress: hangAfterProgress,
  malformed_json: malformedJson,
  malformed_sse: malformedSse,
  oversized_json: oversizedJson(8192),
  oversized_json_chunked: oversizedJsonChunked(8192),
  oversized_sse: oversizedSse(8192),
  slow: answerAfter(800, 'slow done'),
  http_500_oversized: httpErrorOversized(8192),
};

describe('an upstream that breaks the connection mid-call', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
    gw = await startGateway(gatewayConfig(upstream.url, 'request_timeout: 10s'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it.each(['2025-11-25', '2025-06-18'])(
    'dies after a progress event of an SSE answer → -32001 naming the upstream, after the progress (%s)',
    async (version) => {
      const s = await Session.open(url, version);
      const { answer, id, last } = await s.call('die_mid_stream', {}, 'tok-1');
      expect(answer.status).toBe(200);
      expect(String(answer.headers['content-type'])).toMatch(/^text\/event-stream/);
      const progress = answer.messages.find((m) => m.method === 'notifications/progress');
      expect((progress?.params as Msg | undefined)?.progressToken).toBe('tok-1');
      expect(last.id).toBe(id);
      expect(errorOf(last).code).toBe(-32001);
      expect(errorOf(last).message).toContain('upstream "flaky"');
      await s.expectEcho('after a death mid-stream');
      await (await Session.open(url, version)).expectEcho('a new session too');
    },
  );

  it('dies before sending headers → -32001 naming the upstream; the next call works', async () => {
    const s = await Session.open(url);
    const { answer, id, last } = await s.call('die_before_headers');
    expect(answer.status).toBe(200);
    expect(last.id).toBe(id);
    expect(errorOf(last).code).toBe(-32001);
    expect(errorOf(last).message).toContain('upstream "flaky"');
    await s.expectEcho('after a death before headers');
    const again = await s.call('die_before_headers');
    expect(errorOf(again.last).code).toBe(-32001);
    await s.expectEcho('and again');
  });
});

describe('an upstream that hangs (request_timeout: 500ms)', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
    gw = await startGateway(gatewayConfig(upstream.url, 'request_timeout: 500ms'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('never sends headers → -32003 naming the upstream, within a bounded time', async () => {
    const s = await Session.open(url);
    const t0 = performance.now();
    const { answer, id, last } = await s.call('hang');
    const elapsed = performance.now() - t0;
    expect(answer.status).toBe(200);
    expect(last.id).toBe(id);
    expect(errorOf(last).code).toBe(-32003);
    expect(errorOf(last).message).toContain('upstream "flaky"');
    expect(errorOf(last).message).toContain('500 ms');
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(5000);
    await s.expectEcho('after a hang');
  });

  it('stalls after a progress event of an SSE answer → -32003 after the progress', async () => {
    const s = await Session.open(url);
    const t0 = performance.now();
    const { answer, id, last } = await s.call('hang_after_progress', {}, 'tok-h');
    const elapsed = performance.now() - t0;
    expect(String(answer.headers['content-type'])).toMatch(/^text\/event-stream/);
    expect(answer.messages.some((m) => m.method === 'notifications/progress')).toBe(true);
    expect(last.id).toBe(id);
    expect(errorOf(last).code).toBe(-32003);
    expect(errorOf(last).message).toContain('upstream "flaky"');
    expect(elapsed).toBeLessThan(5000);
    await s.expectEcho('after a stalled stream');
  });
});

describe('an unreachable upstream (nothing listens on its port)', () => {
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    gw = await startGateway(gatewayConfig(await unreachableUrl(), 'connect_timeout: 2s', '', 'dead'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('initialize → JSON-RPC error -32001 naming the upstream, no session; the gateway stays up', async () => {
    for (let i = 0; i < 2; i++) {
      const a = await post(url, initializeBody('2025-11-25'));
      expect(a.status).toBe(200);
      expect(a.headers['mcp-session-id']).toBeUndefined();
      const m = a.messages[0]!;
      expect(m.id).toBe('init');
      expect(errorOf(m).code).toBe(-32001);
      expect(errorOf(m).message).toContain('upstream "dead"');
    }
    const health = await request(`${gw.base}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const ready = await request(`${gw.base}/readyz`);
    const body = (await ready.body.json()) as { upstreams: Record<string, { status: string }> };
    expect(body.upstreams.dead?.status).toBe('down');
  });
});

describe('an upstream that answers garbage or too much (limits.max_response_bytes: 2KiB)', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;
  let s: Session;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
    gw = await startGateway(
      gatewayConfig(upstream.url, 'request_timeout: 10s', 'limits: { max_response_bytes: 2KiB }'),
    );
    url = `${gw.base}/mcp`;
    s = await Session.open(url);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it.each([
    { tool: 'malformed_json', message: 'malformed JSON' },
    { tool: 'malformed_sse', message: 'malformed JSON' },
    { tool: 'oversized_json', message: 'larger than 2048 bytes' },
    { tool: 'oversized_json_chunked', message: 'larger than 2048 bytes' },
    { tool: 'oversized_sse', message: 'larger than 2048 bytes' },
  ])('$tool → -32004 naming the upstream ($message)', async ({ tool, message }) => {
    const { answer, id, last } = await s.call(tool);
    expect(answer.status).toBe(200);
    expect(last.id).toBe(id);
    expect(errorOf(last).code, answer.text).toBe(-32004);
    expect(errorOf(last).message).toContain('upstream "flaky"');
    expect(errorOf(last).message).toContain(message);
    await s.expectEcho(`after ${tool}`);
  });
});

describe('upstream max_concurrency: 2', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
    gw = await startGateway(gatewayConfig(upstream.url, 'request_timeout: 10s, max_concurrency: 2'));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('4 concurrent slow calls: 2 succeed, 2 fail fast with -32006 naming the upstream', async () => {
    const s = await Session.open(url);
    const done: { at: number; last: Msg }[] = [];
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const { last } = await s.call('slow');
        done.push({ at: performance.now(), last });
      }),
    );
    const ok = done.filter((d) => 'result' in d.last);
    const refused = done.filter((d) => 'error' in d.last);
    expect(ok).toHaveLength(2);
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect(errorOf(r.last).code).toBe(-32006);
      expect(errorOf(r.last).message).toContain('upstream "flaky"');
      expect(errorOf(r.last).message).toContain('max_concurrency');
    }
    for (const o of ok) expect(o.last.result).toEqual({ content: [{ type: 'text', text: 'slow done' }] });
    // Fail fast: both refusals arrived before either slow call finished.
    expect(Math.max(...refused.map((r) => r.at))).toBeLessThan(Math.min(...ok.map((o) => o.at)));
    // The slots are released: two concurrent calls now both succeed.
    const again = await Promise.all([s.call('slow'), s.call('slow')]);
    for (const a of again) expect(a.last.result).toEqual({ content: [{ type: 'text', text: 'slow done' }] });
  });
});

describe('an upstream that forgets the session (404)', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;
  let url: string;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
    gw = await startGateway(gatewayConfig(upstream.url));
    url = `${gw.base}/mcp`;
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('the call that meets the 404 gets an error; the next call works on a re-opened upstream session', async () => {
    const s = await Session.open(url);
    await s.expectEcho('before');
    const inits = upstream.initializeCount;
    upstream.forgetSessions();
    const { last } = await s.call('echo', { text: 'lost' });
    expect(errorOf(last).code).toBe(-32001);
    expect(errorOf(last).message).toContain('upstream "flaky"');
    await s.expectEcho('after');
    expect(upstream.initializeCount).toBe(inits + 1);
    // The new upstream session is the one now in use.
    const lastCall = upstream.received
      .filter((r) => (r.body as Msg | undefined)?.method === 'tools/call')
      .at(-1);
    expect(lastCall?.headers['mcp-session-id']).toBe(upstream.issuedSessionIds.at(-1));
  });
});

describe('graceful shutdown', () => {
  let upstream: MisbehavingUpstream;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it('a slow call in flight completes; new connections are refused; the stop does not wait for the deadline', async () => {
    const gw = await startGateway(
      gatewayConfig(upstream.url, 'request_timeout: 10s', 'shutdown_timeout: 10s'),
    );
    try {
      const port = Number(new URL(gw.base).port);
      const s = await Session.open(`${gw.base}/mcp`);
      const seen = upstream.received.length;
      const inFlight = s.call('slow').then((r) => ({ ...r, at: performance.now() }));
      // Wait until the upstream has the call, then begin the shutdown.
      const hasCall = () =>
        upstream.received.slice(seen).some((r) => (r.body as Msg | undefined)?.method === 'tools/call');
      for (let i = 0; i < 200 && !hasCall(); i++) await new Promise((r) => setTimeout(r, 5));
      expect(hasCall()).toBe(true);
      const closing = gw.close().then(() => performance.now());
      await new Promise((r) => setTimeout(r, 100));
      const refused = await new Promise<string>((resolve) => {
        const sock = connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve('connected');
        });
        sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      expect(refused).toBe('ECONNREFUSED');
      const { answer, last, at } = await inFlight;
      expect(answer.status).toBe(200);
      expect(last.result).toEqual({ content: [{ type: 'text', text: 'slow done' }] });
      const closedAt = await closing;
      // The upstream session was ended with DELETE once the call was done.
      expect(upstream.received.slice(seen).some((r) => r.httpMethod === 'DELETE')).toBe(true);
      // Nothing is left in flight once the call is answered: the stop must not sit out shutdown_timeout (10s)
      // because the client's connection stayed open as keep-alive.
      expect(closedAt - at).toBeLessThan(3000);
    } finally {
      await gw.close();
    }
  });
});

/** Runs `gatehouse serve` as its own process; resolves once it prints its address. */
async function serveProcess(
  configText: string,
): Promise<{ child: ChildProcess; base: string; output(): string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-failures-'));
  const file = join(dir, 'gatehouse.yaml');
  await writeFile(file, configText);
  const child = spawn(
    process.execPath,
    ['src/cli/main.ts', 'serve', '-c', file, '--host', '127.0.0.1', '--port', '0'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gatehouse serve did not start:\n${out}`)), 15_000);
      const onData = () => {
        const m = /Gatehouse listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!.replace('localhost', '127.0.0.1'));
        }
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gatehouse serve exited (${signal ?? code}) before listening:\n${out}`));
      });
    });
    return { child, base, output: () => out, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

describe('the gateway process survives every upstream failure (a real `gatehouse serve`)', () => {
  let upstream: MisbehavingUpstream;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: TOOLS });
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it.each([
    { tool: 'die_mid_stream', code: -32001 },
    { tool: 'die_before_headers', code: -32001 },
    { tool: 'malformed_json', code: -32004 },
    { tool: 'malformed_sse', code: -32004 },
    { tool: 'oversized_json', code: -32004 },
    { tool: 'oversized_json_chunked', code: -32004 },
    { tool: 'oversized_sse', code: -32004 },
    { tool: 'http_500_oversized', code: -32001 },
  ])('$tool → $code, and the process still serves the next call', async ({ tool, code }) => {
    const gw = await serveProcess(
      `${gatewayConfig(upstream.url, 'request_timeout: 10s', 'limits: { max_response_bytes: 2KiB }')}\nlog: { level: error }\n`,
    );
    try {
      const s = await Session.open(`${gw.base}/mcp`);
      const { last } = await s.call(tool);
      expect(errorOf(last).code).toBe(code);
      expect(errorOf(last).message).toContain('upstream "flaky"');
      // Give a deferred crash (an unhandled 'error' event) the chance to happen.
      await new Promise((r) => setTimeout(r, 300));
      expect(gw.child.exitCode, gw.output()).toBeNull();
      await s.expectEcho(`after ${tool}`);
    } finally {
      await gw.stop();
    }
  });
});
