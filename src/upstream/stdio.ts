// Upstream `stdio`: an MCP server the gateway launches and supervises, speaking newline-delimited
// JSON-RPC on its stdin/stdout. One process per client session (isolation: a session's state and crash
// are its own) or one shared by every session (cheap: one process, ids and progress tokens rewritten).

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { Errors } from '../mcp/errors.ts';
import {
  ErrorCode,
  invalidMessageReason,
  isRequest,
  type JsonRpcMessage,
  serialize,
} from '../mcp/jsonrpc.ts';
import type { Logger } from '../telemetry/logger.ts';
import { UpstreamBase } from './base.ts';
import { ChannelUpstreamSession, type MessageChannel } from './channel-session.ts';
import type { ClientInfo, RequestOptions, Upstream, UpstreamSession } from './types.ts';

export interface StdioOptions {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  /** The child's whole environment: only what the config gives (secrets resolved). */
  env: Record<string, string>;
  mode: 'per-session' | 'shared';
  maxProcesses: number;
  startupTimeoutMs: number;
  requestTimeoutMs: number;
  maxConcurrency: number;
  maxMessageBytes: number;
  logger: Logger;
}

/** How long a stopping child gets after its stdin closes, then after SIGTERM, before SIGKILL. */
const STOP_GRACE_MS = 1_000;
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
const MAX_STDERR_LINE = 4_096;

/** Finds a command on the gateway's PATH (the child itself gets no PATH unless its config gives one). */
export function resolveCommand(command: string, cwd: string, path = process.env.PATH ?? ''): string {
  if (command.includes('/')) return isAbsolute(command) ? command : resolve(cwd, command);
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return command; // spawn reports ENOENT, which becomes a clear error
}

/** A child process as a message channel: one JSON-RPC message per line each way; stderr to the log. */
class ProcessChannel implements MessageChannel {
  readonly child: ChildProcess;
  readonly #maxBytes: number;
  #onMessage: ((m: JsonRpcMessage) => void) | undefined;
  #onClose: ((reason: string) => void) | undefined;
  #closedReason: string | undefined;
  readonly exited: Promise<void>;
  #partial: string[] = [];
  #partialSize = 0;
  /** Set when the gateway itself stops the process (an exit then is no crash). */
  stopping = false;

  constructor(opts: StdioOptions) {
    this.#maxBytes = opts.maxMessageBytes;
    const logger = opts.logger;
    this.child = spawn(resolveCommand(opts.command, opts.cwd), opts.args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.exited = new Promise((done) => {
      this.child.once('exit', (code, signal) => {
        this.#end(signal ? `process exited on ${signal}` : `process exited with code ${code}`);
        done();
      });
      this.child.once('error', (err) => {
        this.#end(
          `process could not be started (${(err as NodeJS.ErrnoException).code ?? err.message}: ${opts.command})`,
        );
        done();
      });
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.#data(chunk, logger));
    this.child.stdin!.on('error', () => {}); // EPIPE after the child died: reported by 'exit'
    let errPartial = '';
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      const lines = (errPartial + chunk).split('\n');
      errPartial = (lines.pop() ?? '').slice(0, MAX_STDERR_LINE);
      for (const line of lines)
        if (line.trim()) logger.info({ stream: 'stderr' }, line.slice(0, MAX_STDERR_LINE));
    });
  }

  #data(chunk: string, logger: Logger): void {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, nl);
      const line = this.#partial.length === 0 ? piece : this.#partial.join('') + piece;
      this.#partial = [];
      this.#partialSize = 0;
      start = nl + 1;
      this.#line(line.trim(), logger);
    }
    if (start < chunk.length) {
      this.#partial.push(chunk.slice(start));
      this.#partialSize += chunk.length - start;
      if (this.#partialSize > this.#maxBytes) {
        logger.warn(
          { limit: this.#maxBytes },
          'upstream process wrote a message over limits.max_response_bytes; stopping it',
        );
        this.#end(`process sent a message larger than ${this.#maxBytes} bytes (limits.max_response_bytes)`);
        this.child.kill('SIGKILL');
      }
    }
  }

  #line(line: string, logger: Logger): void {
    if (line === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      logger.warn(
        { line: line.slice(0, 200) },
        'upstream process wrote a line that is not JSON on stdout (MCP reserves stdout for messages); dropped',
      );
      return;
    }
    const reason = invalidMessageReason(v);
    if (reason) {
      logger.warn({ reason }, 'upstream process wrote an invalid JSON-RPC message; dropped');
      return;
    }
    this.#onMessage?.(v as JsonRpcMessage);
  }

  #end(reason: string): void {
    if (this.#closedReason !== undefined) return;
    this.#closedReason = reason;
    this.#onClose?.(reason);
  }

  send(m: JsonRpcMessage): Promise<void> {
    if (this.#closedReason !== undefined) return Promise.reject(new Error(this.#closedReason));
    const text = serialize(m);
    if (text === undefined) return Promise.resolve();
    return new Promise((done, fail) => {
      this.child.stdin!.write(`${text}\n`, (err) => (err ? fail(err) : done()));
    });
  }

  onMessage(handler: (m: JsonRpcMessage) => void): void {
    this.#onMessage = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.#onClose = handler;
    if (this.#closedReason !== undefined) handler(this.#closedReason);
  }

  /** The spec's shutdown: close stdin, then SIGTERM, then SIGKILL, each after a grace period. */
  async close(): Promise<void> {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    this.stopping = true;
    this.#end('session closed');
    c.stdin!.end();
    const waited = (ms: number) =>
      Promise.race([
        this.exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref()),
      ]);
    if (await waited(STOP_GRACE_MS)) return;
    c.kill('SIGTERM');
    if (await waited(STOP_GRACE_MS)) return;
    c.kill('SIGKILL');
    await this.exited;
  }
}

/** One client's view of a shared session: its own id scope; closing it leaves the process running. */
class SharedHandle implements UpstreamSession {
  readonly #shared: ChannelUpstreamSession;
  readonly #scope: string;
  readonly #onClose: () => void;
  #handler: ((m: JsonRpcMessage) => void) | undefined;
  #closed = false;

  constructor(shared: ChannelUpstreamSession, scope: string, onClose: () => void) {
    this.#shared = shared;
    this.#scope = scope;
    this.#onClose = onClose;
  }

  /** A message of the shared process meant for every client (list changes). */
  deliver(m: JsonRpcMessage): void {
    if (!this.closed) this.#handler?.(m);
  }

  get upstream(): string {
    return this.#shared.upstream;
  }
  get protocolVersion(): string {
    return this.#shared.protocolVersion;
  }
  /** Without `tasks`: one process serves every client, and its tasks could not be kept apart. */
  get initializeResult(): Record<string, unknown> {
    const result = this.#shared.initializeResult;
    const caps = result.capabilities as Record<string, unknown> | undefined;
    if (!caps?.tasks) return result;
    const { tasks: _hidden, ...rest } = caps;
    return { ...result, capabilities: rest };
  }
  get closed(): boolean {
    return this.#closed || this.#shared.closed;
  }
  request(req: Parameters<UpstreamSession['request']>[0], opts?: RequestOptions) {
    if (req.method.startsWith('tasks/') || (req.params && 'task' in req.params)) {
      const error = {
        code: ErrorCode.MethodNotFound,
        message:
          'tasks are not available on a shared stdio upstream (one process serves every client); use mode: per-session',
      };
      return Promise.resolve({ jsonrpc: '2.0' as const, id: req.id, error });
    }
    return this.#shared.requestIn(this.#scope, req, opts);
  }
  notify(n: Parameters<UpstreamSession['notify']>[0]) {
    // initialized, roots/list_changed …: the shared process was initialized once, for everyone.
    if (n.method === 'notifications/initialized') return Promise.resolve();
    return this.#shared.notify(n);
  }
  respond(res: Parameters<UpstreamSession['respond']>[0]) {
    return this.#shared.respond(res);
  }
  cancel(id: Parameters<UpstreamSession['cancel']>[0], reason?: string) {
    return this.#shared.cancelIn(this.#scope, id, reason);
  }
  onServerMessage(handler: (m: JsonRpcMessage) => void): void {
    // Requests of the shared process reach a client through the request in flight (channel-session);
    // outside requests only list changes are delivered (see StdioUpstream#fromShared).
    this.#handler = handler;
  }
  async close(): Promise<void> {
    this.#closed = true;
    this.#onClose();
  }
}

export class StdioUpstream extends UpstreamBase implements Upstream {
  readonly options: StdioOptions;
  readonly #processes = new Set<ProcessChannel>();
  #crashes = 0;
  #restartAt = 0;
  #shared: Promise<ChannelUpstreamSession> | undefined;
  #scopes = 0;
  /** Processes of client sessions (the catalogue's own do not count against max_processes). */
  #clientProcesses = 0;
  readonly #handles = new Set<SharedHandle>();
  #closing = false;

  constructor(options: StdioOptions) {
    super(options.name, options.maxConcurrency, options.logger);
    this.options = options;
  }

  /** Processes alive now (for tests and /readyz). */
  get processCount(): number {
    return this.#processes.size;
  }

  async connect(client: ClientInfo, opts: { internal?: boolean } = {}): Promise<UpstreamSession> {
    if (this.#closing) throw Errors.shuttingDown(`upstream "${this.name}" is shutting down`);
    if (this.options.mode === 'per-session') {
      const { session } = await this.#start(client, opts.internal === true);
      return session;
    }
    const shared = await this.#sharedSession();
    const handle = new SharedHandle(shared, `${++this.#scopes}\u0000`, () => this.#handles.delete(handle));
    this.#handles.add(handle);
    return handle;
  }

  /**
   * What the shared process sends outside any request: list changes concern everyone (each client's
   * session hears of them, and so the catalogue); a request has no single owner and is refused at once;
   * other notifications (logs, resource updates) would leak between clients and are dropped.
   */
  #fromShared(shared: ChannelUpstreamSession, m: JsonRpcMessage): void {
    if (isRequest(m)) {
      const error = {
        code: -32601,
        message: `${m.method} outside a request cannot be routed: this stdio upstream is shared by several clients`,
      };
      void shared.respond({ jsonrpc: '2.0', id: m.id, error }).catch(() => {});
      return;
    }
    if ('method' in m && m.method.endsWith('/list_changed')) for (const h of this.#handles) h.deliver(m);
  }

  async #sharedSession(): Promise<ChannelUpstreamSession> {
    const current = this.#shared ? await this.#shared.catch(() => undefined) : undefined;
    if (current && !current.closed) return current;
    // One shared process for every client: initialized with all the capabilities the gateway can relay;
    // requests a client cannot answer are refused per client (router).
    this.#shared = this.#start(
      {
        protocolVersion: '2025-11-25',
        capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } },
        clientInfo: { name: 'gatehouse', version: '0' },
      },
      true,
    ).then((r) => {
      r.session.onServerMessage((m) => this.#fromShared(r.session, m));
      return r.session;
    });
    return this.#shared;
  }

  /** Spawns and initializes one process, within the process cap and the crash back-off. */
  async #start(
    client: ClientInfo,
    internal: boolean,
  ): Promise<{ session: ChannelUpstreamSession; channel: ProcessChannel }> {
    // The crash back-off protects the one shared process; per-session processes are independent.
    const wait = this.options.mode === 'shared' ? this.#restartAt - Date.now() : 0;
    if (wait > 0) {
      throw Errors.upstreamUnavailable(
        `upstream "${this.name}" crashed (${this.lastError ?? 'unknown'}); restarting in ${wait} ms`,
      );
    }
    if (!internal && this.#clientProcesses >= this.options.maxProcesses) {
      throw Errors.overloaded(
        `upstream "${this.name}" already runs ${this.options.maxProcesses} processes (its max_processes); retry later`,
      );
    }
    const channel = new ProcessChannel(this.options);
    this.#processes.add(channel);
    if (!internal) this.#clientProcesses++;
    const started = Date.now();
    void channel.exited.then(() => {
      this.#processes.delete(channel);
      if (!internal) this.#clientProcesses--;
      // An exit nobody asked for is a crash: the next start waits, longer each time in a row.
      if (!this.#closing && !channel.stopping) {
        this.#crashes = Date.now() - started > RESTART_MAX_MS ? 1 : this.#crashes + 1;
        this.#restartAt = Date.now() + Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (this.#crashes - 1));
      }
    });
    const session = new ChannelUpstreamSession({
      upstream: this.name,
      channel,
      requestTimeoutMs: this.options.requestTimeoutMs,
      limiter: this,
      logger: this.options.logger,
      onUp: () => this.markUp(),
      onDown: (err) => this.markDown(err),
    });
    try {
      await session.initialize(client, this.options.startupTimeoutMs);
    } catch (err) {
      await channel.close();
      this.markDown(err);
      throw err;
    }
    return { session, channel };
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#processes].map((p) => p.close()));
  }
}
