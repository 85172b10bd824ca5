// The gateway's log, captured in memory at debug level with the product's own logger: one 'exchange' line
// per MCP exchange with what an operator needs to follow it, and no secret ever written — neither the
// upstream credentials from the config nor the client's own Authorization, on success or on failure.
// And the credentials go where they belong: the configured ones to the upstream, the client's nowhere.

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  type MisbehavingUpstream,
  startMisbehavingUpstream,
  unreachableUrl,
} from '../fixtures/misbehaving-upstream.ts';

type Msg = Record<string, unknown>;

const ACCEPT = 'application/json, text/event-stream';
const VERSION = '2025-11-25';

// Recognisable values: a leak of any of them anywhere in the log fails the test.
const UPSTREAM_TOKEN = 'upstream-token-S3cr3t-91xQ';
const API_KEY = 'api-key-S3cr3t-47pL';
const CLIENT_TOKEN = 'client-secret-xyz';
const CLIENT_COOKIE = 'client-cookie-S3cr3t-88';
const SECRETS = [UPSTREAM_TOKEN, API_KEY, CLIENT_TOKEN, CLIENT_COOKIE];

const TOKEN_ENV = 'GATEHOUSE_TEST_SECRET_TOKEN';
const KEY_ENV = 'GATEHOUSE_TEST_API_KEY';

const CLIENT_HEADERS = { authorization: `Bearer ${CLIENT_TOKEN}`, cookie: `sid=${CLIENT_COOKIE}` };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Msg | undefined;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(url, {
    method: 'POST',
    headers: { accept: ACCEPT, 'content-type': 'application/json', ...CLIENT_HEADERS, ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text ? (JSON.parse(text) as Msg) : undefined };
}

const initializeBody: Msg = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: {
    protocolVersion: VERSION,
    capabilities: {},
    clientInfo: { name: 'logging-test', version: '1.0.0' },
  },
};

describe('logging', () => {
  let upstream: MisbehavingUpstream;
  let gateway: Gateway;
  let base: string;
  const raw: string[] = [];
  const lines = () => raw.map((l) => JSON.parse(l) as Msg);
  const exchanges = () => lines().filter((l) => l.msg === 'exchange');
  const savedEnv = { token: process.env[TOKEN_ENV], key: process.env[KEY_ENV] };

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    const dead = await unreachableUrl();
    // { env: NAME } secrets are resolved from the process environment when the upstream is built.
    process.env[TOKEN_ENV] = `Bearer ${UPSTREAM_TOKEN}`;
    process.env[KEY_ENV] = API_KEY;
    const yaml = `
log: { level: debug }
upstreams:
  rec:
    type: streamable-http
    url: "${upstream.url}"
    headers:
      authorization: { env: ${TOKEN_ENV} }
      X-Api-Key: "\${${KEY_ENV}}"
  dead:
    type: streamable-http
    url: "${dead}"
    connect_timeout: 1s
    headers:
      authorization: { env: ${TOKEN_ENV} }
      x-api-key: "\${${KEY_ENV}}"
routes:
  - { path: /mcp, upstreams: [rec] }
  - { path: /dead, upstreams: [dead] }
health: { interval: 200ms }
`;
    const config = parseConfig(yaml, 'logging.yaml', { ...process.env });
    config.audit.enabled = false; // no audit database in the working tree (audit*.test.ts test it)
    config.listen.port = 0;
    const logger = createLogger(config.log.level, {
      write(line: string) {
        raw.push(line);
      },
    });
    gateway = await createGateway({ config, file: 'logging.yaml', baseDir: process.cwd() }, { logger });
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
  });
  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    for (const [name, v] of [
      [TOKEN_ENV, savedEnv.token],
      [KEY_ENV, savedEnv.key],
    ] as const) {
      if (v === undefined) delete process.env[name];
      else process.env[name] = v;
    }
  });

  /** Sends one message and checks that it produced exactly one exchange line; returns the answer and line. */
  async function exchange(
    path: string,
    body: Msg,
    headers: Record<string, string> = {},
  ): Promise<{ answer: Answer; line: Msg }> {
    const before = exchanges().length;
    const answer = await post(`${base}${path}`, body, headers);
    const after = exchanges();
    expect(after.length - before, `exchange lines for ${String(body.method)}`).toBe(1);
    return { answer, line: after.at(-1)! };
  }

  it('writes one debug "exchange" line per MCP exchange, with ids, method, upstream, outcome and durations', async () => {
    const init = await exchange('/mcp', initializeBody);
    expect(init.answer.status).toBe(200);
    const sid = String(init.answer.headers['mcp-session-id']);
    const session = { 'mcp-session-id': sid, 'mcp-protocol-version': VERSION };
    expect(init.line).toMatchObject({
      level: 20,
      route: '/mcp',
      sessionId: sid,
      method: 'initialize',
      upstream: 'rec',
      outcome: 'ok',
      httpStatus: 200,
    });

    // A notification is not an exchange: no line.
    const before = exchanges().length;
    expect(
      (await post(`${base}/mcp`, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status,
    ).toBe(202);
    expect(exchanges().length).toBe(before);

    const list = await exchange('/mcp', { jsonrpc: '2.0', id: 1, method: 'tools/list' }, session);
    const call = await exchange(
      '/mcp',
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } },
      session,
    );
    const unknown = await exchange(
      '/mcp',
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'nope', arguments: {} } },
      session,
    );
    const ping = await exchange('/mcp', { jsonrpc: '2.0', id: 4, method: 'ping' }, session);

    // Lists are answered from the gateway's catalogue: no upstream takes part.
    expect(list.line).toMatchObject({ sessionId: sid, method: 'tools/list', outcome: 'ok' });
    expect(list.line.upstream).toBeUndefined();
    expect(call.line).toMatchObject({
      sessionId: sid,
      method: 'tools/call',
      upstream: 'rec',
      target: 'echo',
      outcome: 'ok',
    });
    expect(unknown.line).toMatchObject({
      method: 'tools/call',
      target: 'nope',
      outcome: 'error',
      rpcCode: -32602,
    });
    // ping is answered by the gateway itself: no upstream, no upstream time.
    expect(ping.line).toMatchObject({ sessionId: sid, method: 'ping', outcome: 'ok' });
    expect(ping.line.upstream).toBeUndefined();
    expect(ping.line.upstreamMs).toBeUndefined();

    const all = [init.line, list.line, call.line, unknown.line, ping.line];
    for (const l of all) {
      expect(l.level).toBe(20);
      expect(l.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
      expect(typeof l.ms).toBe('number');
      expect(l.ms as number).toBeGreaterThanOrEqual(0);
    }
    // Upstream time exists where an upstream (or the catalogue's wait for it) took part.
    for (const l of [init.line, call.line]) {
      expect(typeof l.upstreamMs).toBe('number');
      expect(l.upstreamMs as number).toBeLessThanOrEqual(l.ms as number);
    }
    expect(new Set(all.map((l) => l.requestId)).size).toBe(all.length);
  });

  it('logs failed exchanges too: an unreachable upstream, and a request refused at the edge', async () => {
    const dead = await exchange('/dead', initializeBody);
    expect(dead.answer.status).toBe(200);
    expect((dead.answer.json?.error as Msg | undefined)?.code).toBe(-32001);
    expect(dead.line).toMatchObject({
      route: '/dead',
      method: 'initialize',
      upstream: 'dead',
      outcome: 'upstream_error',
      rpcCode: -32001,
    });
    expect(dead.line.sessionId).toBeUndefined();

    const refused = await exchange('/mcp', { jsonrpc: '2.0', id: 9, method: 'tools/list' }); // no session id
    expect(refused.answer.status).toBe(400);
    expect(refused.line).toMatchObject({
      method: 'tools/list',
      outcome: 'error',
      httpStatus: 400,
      rpcCode: -32000,
    });
  });

  it('never writes a secret: upstream credentials from the config, or the client Authorization and Cookie', async () => {
    // Enough traffic for every path to have logged: successes, upstream failures, probes up and down.
    const init = await post(`${base}/mcp`, initializeBody);
    const sid = String(init.headers['mcp-session-id']);
    const session = { 'mcp-session-id': sid, 'mcp-protocol-version': VERSION };
    await post(
      `${base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } },
      session,
    );
    await post(`${base}/dead`, initializeBody);
    for (let i = 0; i < 50 && !lines().some((l) => l.msg === 'upstream is down'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // The failure was logged, naming the upstream and the cause...
    const down = lines().find((l) => l.msg === 'upstream is down');
    expect(down).toMatchObject({ level: 40, upstream: 'dead' });
    expect(String(down?.err)).toMatch(/upstream "dead" is unreachable/);
    expect(lines().some((l) => l.msg === 'upstream is up' && l.upstream === 'rec')).toBe(true);
    expect(exchanges().length).toBeGreaterThan(5);

    // ...and no secret appears anywhere, in any form the log could carry it.
    const text = raw.join('');
    for (const s of SECRETS) {
      expect(text).not.toContain(s);
      expect(text).not.toContain(Buffer.from(s).toString('base64'));
    }
  });

  it("sends the configured headers to the upstream and never the client's Authorization or Cookie", async () => {
    await post(`${base}/mcp`, initializeBody);
    const received = upstream.received;
    expect(received.length).toBeGreaterThan(0);
    for (const r of received) {
      expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
      expect(r.headers['x-api-key']).toBe(API_KEY);
      expect(r.headers.cookie).toBeUndefined();
      expect(JSON.stringify(r.headers)).not.toContain(CLIENT_TOKEN);
      expect(JSON.stringify(r.headers)).not.toContain(CLIENT_COOKIE);
    }
    // Requests the client drove (not only the gateway's own health probes) were among them.
    expect(
      received.some(
        (r) =>
          (r.body as Msg | undefined)?.method === 'initialize' &&
          ((r.body as Msg).params as Msg).clientInfo !== undefined &&
          (((r.body as Msg).params as Msg).clientInfo as Msg).name === 'logging-test',
      ),
    ).toBe(true);
  });
});
