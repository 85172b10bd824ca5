// The `gatehouse` command as a real process: version and help, validate (exit codes and messages), and
// serve in front of the demo MCP server, with --host/--port and GATEHOUSE_* overrides and graceful
// shutdown on SIGTERM and SIGINT.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: config text with ${ENV} references is what these tests feed in

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from '../../src/demo/demo-server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const SINGLE_UPSTREAM = 'examples/single-upstream.yaml';
const SHUTDOWN_TIMEOUT_MS = 2000;
/** Time a process may take beyond shutdown_timeout to exit (process teardown, CI jitter). */
const EXIT_MARGIN_MS = 1500;

interface Cli {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once the process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();

/** The environment of the test process without anything that would steer the CLI. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      k.startsWith('GATEHOUSE_') ||
      k === 'UPSTREAM_URL' ||
      k === 'DEMO_UPSTREAM_URL' ||
      k === 'NODE_OPTIONS'
    )
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function startCli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Cli {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
  };
}

/** Runs a command to completion (killed after `timeoutMs`). */
async function runCli(args: string[], env: Record<string, string> = {}, cwd = ROOT, timeoutMs = 20_000) {
  const cli = startCli(args, env, cwd);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await cli.exited;
  clearTimeout(timer);
  return { code, signal, stdout: cli.stdout, stderr: cli.stderr };
}

/** Waits for a line on stdout; fails with everything the process printed if it exits or takes too long. */
async function waitForStdout(cli: Cli, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void cli.exited.then(() => {
    exited = true;
  });
  for (;;) {
    const m = cli.stdout.match(pattern);
    if (m) return m;
    if (exited || Date.now() > deadline) {
      throw new Error(
        `${exited ? 'process exited' : 'timed out'} before printing ${pattern}\n--- stdout\n${cli.stdout}\n--- stderr\n${cli.stderr}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for exit, at most `ms`; returns undefined on timeout. */
async function exitWithin(cli: Cli, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  const result = await Promise.race([cli.exited, timeout]);
  clearTimeout(timer);
  return result;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The 1-based line of the first occurrence of `needle` in a file. */
async function lineOf(file: string, needle: string): Promise<number> {
  const lines = (await readFile(join(ROOT, file), 'utf8')).split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`${needle} not in ${file}`);
  return i + 1;
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'cli-e2e', version: '0.0.0' },
  },
};

/** A JSON-RPC answer from a POST, whether sent as JSON or as an SSE stream. */
async function rpcAnswer(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const events = text.split(/\n\n/).flatMap((block) => {
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      return data ? [JSON.parse(data) as Record<string, unknown>] : [];
    });
    const answer = events.find((e) => 'result' in e || 'error' in e);
    if (!answer) throw new Error(`no answer in the stream: ${text}`);
    return answer;
  }
  return JSON.parse(text) as Record<string, unknown>;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** initialize over HTTP; returns the session id after checking the answer. */
async function initialize(mcpUrl: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await post(mcpUrl, INITIALIZE, headers);
  expect(res.status).toBe(200);
  const sessionId = res.headers.get('mcp-session-id');
  const answer = await rpcAnswer(res);
  expect(answer.id).toBe(1);
  const result = answer.result as {
    protocolVersion: string;
    serverInfo: { name: string };
    capabilities: object;
  };
  expect(result.protocolVersion).toBe('2025-11-25');
  expect(result.serverInfo.name).toBeTypeOf('string');
  expect(result.capabilities).toBeTypeOf('object');
  expect(sessionId).toBeTruthy();
  return sessionId!;
}

afterEach(async () => {
  // Whatever happened in the test, no process outlives it.
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, 'exit');
        child.kill('SIGKILL');
        await exit;
      }
      children.delete(child);
    }),
  );
});

describe('gatehouse --version / --help', () => {
  it("prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('lists the commands', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['serve', 'validate', 'schema'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('documents -c/--config and the environment on validate, and --host/--port on serve', async () => {
    const validate = await runCli(['validate', '--help']);
    expect(validate.stdout).toContain('-c, --config <file>');
    expect(validate.stdout).toContain('GATEHOUSE_CONFIG');
    const serve = await runCli(['serve', '--help']);
    for (const s of ['--host <host>', '--port <port>', 'GATEHOUSE_HOST', 'GATEHOUSE_PORT'])
      expect(serve.stdout).toContain(s);
  });

  it('refuses an unknown command with exit code 1', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});

describe('gatehouse schema', () => {
  it('prints the JSON Schema of the config', async () => {
    const r = await runCli(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { $schema: string; title: string; required: string[] };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe('Gatehouse configuration');
    expect(schema.required).toEqual(['upstreams', 'routes']);
  });
});

describe('gatehouse validate', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 on a valid example when its variable is set', async () => {
    const r = await runCli(['validate', '-c', SINGLE_UPSTREAM], {
      UPSTREAM_URL: 'http://127.0.0.1:3001/mcp',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${join(ROOT, SINGLE_UPSTREAM)}: valid (1 upstream, 1 route)\n`);
  });

  it('exits 1 naming the missing variable and its line', async () => {
    const line = await lineOf(SINGLE_UPSTREAM, '${UPSTREAM_URL}');
    const r = await runCli(['validate', '--config', SINGLE_UPSTREAM]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${join(ROOT, SINGLE_UPSTREAM)}: invalid configuration`);
    expect(r.stderr).toContain(
      `line ${line}: upstreams.main.url: environment variable UPSTREAM_URL is not set`,
    );
  });

  it('reads the config named by GATEHOUSE_CONFIG', async () => {
    const r = await runCli(['validate'], {
      GATEHOUSE_CONFIG: SINGLE_UPSTREAM,
      UPSTREAM_URL: 'http://127.0.0.1:3001/mcp',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${join(ROOT, SINGLE_UPSTREAM)}: valid`);
  });

  it('prefers -c over GATEHOUSE_CONFIG', async () => {
    const r = await runCli(['validate', '-c', SINGLE_UPSTREAM], {
      GATEHOUSE_CONFIG: join(dir, 'does-not-exist.yaml'),
      UPSTREAM_URL: 'http://127.0.0.1:3001/mcp',
    });
    expect(r.code).toBe(0);
  });

  it('defaults to ./gatehouse.yaml and says how to choose another file when it is missing', async () => {
    const r = await runCli(['validate'], {}, dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, 'gatehouse.yaml'));
    expect(r.stderr).toMatch(/no such file \(pass -c\/--config or set GATEHOUSE_CONFIG\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('exits 1 with the path and line of every problem of a broken config', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(
      file,
      [
        'listen:',
        '  port: 8080',
        '  hots: 0.0.0.0',
        'log: { level: chatty }',
        'upstreams:',
        '  a: { type: streamable-http, url: "http://127.0.0.1:1/mcp" }',
        'routes:',
        '  - path: /metrics',
        '    upstreams: [b]',
        '',
      ].join('\n'),
    );
    const r = await runCli(['validate', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}: invalid configuration`);
    expect(r.stderr).toContain('line 3: listen.hots: unknown key');
    expect(r.stderr).toMatch(/line 4: log\.level: must be one of .*"info"/);
    expect(r.stderr).toMatch(/line 8: routes\.0\.path: reserved path/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 1 naming an unknown upstream and a duplicate route by path and line', async () => {
    const file = join(dir, 'references.yaml');
    await writeFile(
      file,
      [
        'upstreams:',
        '  a: { type: streamable-http, url: "http://127.0.0.1:1/mcp" }',
        'routes:',
        '  - path: /mcp',
        '    upstreams: [b]',
        '  - path: /mcp',
        '    upstreams: [a]',
        '',
      ].join('\n'),
    );
    const r = await runCli(['validate', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('line 5: routes.0.upstreams.0: unknown upstream "b"; defined upstreams: a');
    expect(r.stderr).toContain('line 6: routes.1.path: duplicate route path /mcp');
  });

  it('exits 1 with the line of a YAML syntax error', async () => {
    const file = join(dir, 'syntax.yaml');
    await writeFile(file, 'upstreams:\n  a: {\nroutes: [\n');
    const r = await runCli(['validate', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line \d+: \(root\): YAML syntax: /);
  });
});

describe('gatehouse serve', () => {
  let demo: DemoServer;
  let dir: string;
  let config: string;

  beforeAll(async () => {
    demo = await startDemoServer({ port: 0 });
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-serve-'));
    config = join(dir, 'gatehouse.yaml');
    await writeFile(
      config,
      [
        '# listen.port is what --port / GATEHOUSE_PORT override',
        'listen: { host: 127.0.0.1, port: 1 }',
        `shutdown_timeout: ${SHUTDOWN_TIMEOUT_MS}ms`,
        'health: { interval: 0 }',
        'upstreams:',
        '  demo:',
        '    type: streamable-http',
        '    url: ${DEMO_URL}',
        'routes:',
        '  - path: /mcp',
        '    upstreams: [demo]',
        '    tools: { prefix: never }',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await demo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const LISTENING = /Gatehouse listening on (http:\/\/[^\s]+)/;

  it('listens on --host/--port, proxies MCP to the upstream, and exits 0 on SIGTERM within the deadline', async () => {
    const port = await freePort();
    const cli = startCli(['serve', '-c', config, '--host', '127.0.0.1', '--port', String(port)], {
      DEMO_URL: demo.url,
    });
    const [, base] = await waitForStdout(cli, LISTENING);
    expect(base).toBe(`http://127.0.0.1:${port}`);
    expect(cli.stdout).toContain(`MCP endpoint: http://127.0.0.1:${port}/mcp`);

    const mcp = `${base}/mcp`;
    const sessionId = await initialize(mcp);
    const session = { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
    expect((await post(mcp, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(
      202,
    );
    const call = await post(
      mcp,
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'through the gateway' } },
      },
      session,
    );
    expect(call.status).toBe(200);
    expect(await rpcAnswer(call)).toMatchObject({
      id: 2,
      result: { content: [{ type: 'text', text: 'through the gateway' }] },
    });

    // A GET stream never ends on its own: shutdown has to end it rather than wait for the deadline.
    const stream = await fetch(mcp, { headers: { accept: 'text/event-stream', ...session } });
    expect(stream.status).toBe(200);
    const streamDone = stream.text().then(
      () => 'ended',
      () => 'ended',
    );

    const sentAt = Date.now();
    cli.child.kill('SIGTERM');
    const exit = await exitWithin(cli, SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    expect(exit, `still running ${SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS} ms after SIGTERM`).toEqual({
      code: 0,
      signal: null,
    });
    expect(Date.now() - sentAt).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    expect(await streamDone).toBe('ended');
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('exits 0 on SIGINT (Ctrl-C) within the deadline', async () => {
    const port = await freePort();
    const cli = startCli(['serve', '--config', config, '--host', '127.0.0.1', '--port', String(port)], {
      DEMO_URL: demo.url,
    });
    const [, base] = await waitForStdout(cli, LISTENING);
    await initialize(`${base}/mcp`);

    cli.child.kill('SIGINT');
    const exit = await exitWithin(cli, SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    expect(exit, `still running ${SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS} ms after SIGINT`).toEqual({
      code: 0,
      signal: null,
    });
  });

  it('takes the port from GATEHOUSE_PORT and the host from GATEHOUSE_HOST', async () => {
    const port = await freePort();
    const cli = startCli(['serve'], {
      GATEHOUSE_CONFIG: config,
      GATEHOUSE_HOST: '127.0.0.1',
      GATEHOUSE_PORT: String(port),
      DEMO_URL: demo.url,
    });
    const [, base] = await waitForStdout(cli, LISTENING);
    expect(base).toBe(`http://127.0.0.1:${port}`);
    await initialize(`${base}/mcp`);
    cli.child.kill('SIGTERM');
    expect(await exitWithin(cli, SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS)).toEqual({ code: 0, signal: null });
  });

  it('prefers --port over GATEHOUSE_PORT', async () => {
    const envPort = await freePort();
    const flagPort = await freePort();
    const cli = startCli(['serve', '-c', config, '--port', String(flagPort)], {
      GATEHOUSE_PORT: String(envPort),
      DEMO_URL: demo.url,
    });
    const [, base] = await waitForStdout(cli, LISTENING);
    expect(base).toBe(`http://127.0.0.1:${flagPort}`);
    await initialize(`${base}/mcp`);
    await expect(fetch(`http://127.0.0.1:${envPort}/healthz`)).rejects.toThrow();
  });

  it('with --port 0 listens on a free port, and accepts browser requests from its own origin', async () => {
    const cli = startCli(['serve', '-c', config, '--port', '0'], { DEMO_URL: demo.url });
    const [, base] = await waitForStdout(cli, LISTENING);
    const port = Number(new URL(base!).port);
    expect(port).toBeGreaterThan(0);
    await initialize(`${base}/mcp`, { origin: `http://127.0.0.1:${port}` });
    const foreign = await post(`${base}/mcp`, INITIALIZE, { origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
  });

  it('exits 1 with the problem, not a stack trace, when the config is invalid', async () => {
    const r = await runCli(['serve', '-c', config, '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 8: upstreams\.demo\.url: environment variable DEMO_URL is not set/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it.each(['65536', '-1', 'http', '80.5'])('exits 1 on --port %s', async (port) => {
    const r = await runCli(['serve', '-c', config, `--port=${port}`], { DEMO_URL: demo.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`invalid port ${JSON.stringify(port)}: use 0-65535`);
  });

  // Regression (was a bug in src/cli/main.ts, the catch around program.parseAsync): only ConfigError and RangeError get a plain
  // message; an address already in use (the commonest start-up failure) prints "gatehouse: Error: listen
  // EADDRINUSE ..." followed by a Node stack trace. The exit code (1) is right.
  it('exits 1 with a plain message when the port is taken', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const { port } = taken.address() as { port: number };
      const r = await runCli(['serve', '-c', config, '--port', String(port)], { DEMO_URL: demo.url });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`127.0.0.1:${port}`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('exits 1 on an invalid GATEHOUSE_PORT', async () => {
    const r = await runCli(['serve', '-c', config], { GATEHOUSE_PORT: '99999', DEMO_URL: demo.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('invalid port "99999"');
  });
});
