// A downstream session: the client's negotiated version and capabilities, its principal, and the
// upstream sessions opened for it lazily, plus where server→client messages go.

import { Errors } from '../mcp/errors.ts';
import { idKey, isRequest, type JsonRpcId, type JsonRpcMessage } from '../mcp/jsonrpc.ts';
import type { SessionBoundIds } from '../mcp/server-request-id.ts';
import type { ProtocolVersion } from '../mcp/versions.ts';
import type { SessionRecord } from '../state/session-store.ts';
import type { Upstream, UpstreamSession } from '../upstream/types.ts';
import type { Principal } from './context.ts';
import { parseEventId, ReplayableStream } from './replay.ts';

/** A client-facing message stream (the GET stream, or one POST's SSE answer). */
export interface MessageStream {
  /** False when the stream is gone (the message was not delivered). `eventId` makes it resumable. */
  send(m: JsonRpcMessage, eventId?: string): boolean;
  close(): void;
}

/** Messages kept for a client that has no GET stream open yet. */
const MAX_PENDING = 100;
/** Resumable answer streams kept per session, and how long a finished one stays resumable. */
const MAX_REPLAY_STREAMS = 32;
const REPLAY_TTL_MS = 60_000;

export class GatewaySession {
  readonly record: SessionRecord;
  readonly principal: Principal | undefined;
  /** The same caller as of its latest request (its token may have been renewed): upstream credentials use it. */
  #caller: Principal | undefined;
  readonly #upstreams: ReadonlyMap<string, Upstream>;
  readonly #ids: SessionBoundIds;
  readonly #open = new Map<string, Promise<UpstreamSession>>();
  readonly #ready = new Map<string, UpstreamSession>();
  /** Requests in flight by the client's id, for notifications/cancelled. */
  readonly #inflight = new Map<string, { upstream: string; id: JsonRpcId }>();
  #stream: MessageStream | undefined;
  #pending: JsonRpcMessage[] = [];
  #closed = false;
  readonly #replay = new Map<string, ReplayableStream>();
  #replayNo = 0;
  onDrop: ((m: JsonRpcMessage) => void) | undefined;
  /** Maps (or drops, returning undefined) what an upstream sends this client; set by the router. */
  inbound: ((upstream: string, m: JsonRpcMessage) => JsonRpcMessage | undefined) | undefined;
  /** The level the client asked for with logging/setLevel, applied to upstream sessions opened later too. */
  logLevel: string | undefined;
  /** Lists whose change the client has not been told of yet (it had no GET stream open); coalesced. */
  readonly #listChanged = new Set<string>();

  constructor(
    record: SessionRecord,
    principal: Principal | undefined,
    upstreams: ReadonlyMap<string, Upstream>,
    ids: SessionBoundIds,
  ) {
    this.record = record;
    this.principal = principal;
    this.#caller = principal;
    this.#upstreams = upstreams;
    this.#ids = ids;
  }

  /** A request of this session's caller (same principal key) arrived with this principal. */
  seenCaller(p: Principal | undefined): void {
    if (p) this.#caller = p;
  }

  /** The gateway's ids bound to this session (server requests, tasks). */
  get ids(): SessionBoundIds {
    return this.#ids;
  }

  get id(): string {
    return this.record.id;
  }

  get profile(): string {
    return this.record.profile;
  }

  get protocolVersion(): ProtocolVersion {
    return this.record.protocolVersion as ProtocolVersion;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get hasStream(): boolean {
    return this.#stream !== undefined;
  }

  /** The upstream session for `name` if it is open: the synchronous fast path of upstream(). */
  readyUpstream(name: string): UpstreamSession | undefined {
    const s = this.#ready.get(name);
    return s && !s.closed ? s : undefined;
  }

  /** The upstream session for `name`, opened on first use and re-opened if the upstream forgot it. */
  async upstream(name: string): Promise<UpstreamSession> {
    if (this.#closed) throw Errors.sessionNotFound('Session not found: it was closed');
    const existing = this.#open.get(name);
    if (existing) {
      const s = await existing.catch(() => undefined);
      if (s && !s.closed) return s;
      if (this.#open.get(name) !== existing) return this.upstream(name);
      void s?.close(); // release what the dead session still holds (a shared process's handle)
    }
    const up = this.#upstreams.get(name);
    if (!up) throw Errors.internal(`route has no upstream "${name}"`);
    const opening = up
      .connect(
        {
          protocolVersion: this.record.protocolVersion,
          capabilities: this.record.clientCapabilities,
          clientInfo: this.record.clientInfo,
        },
        { caller: () => this.#caller },
      )
      .then(async (s) => {
        s.onServerMessage((m) => this.deliver(name, m));
        if (this.logLevel !== undefined) await this.applyLogLevel(s).catch(() => {});
        if (this.#closed) void s.close();
        else this.#ready.set(name, s);
        return s;
      });
    this.#open.set(name, opening);
    opening.catch(() => {
      if (this.#open.get(name) === opening) this.#open.delete(name);
    });
    return opening;
  }

  /** Sends the client's logging level to an upstream session, if that upstream logs at all. */
  async applyLogLevel(us: UpstreamSession): Promise<void> {
    const caps = us.initializeResult.capabilities as Record<string, unknown> | undefined;
    if (this.logLevel === undefined || !caps?.logging) return;
    const res = await us.request({
      jsonrpc: '2.0',
      id: `setLevel-${Date.now()}`,
      method: 'logging/setLevel',
      params: { level: this.logLevel },
    });
    if ('error' in res)
      throw Errors.upstreamProtocol(
        `upstream "${us.upstream}" refused logging/setLevel: ${res.error.message}`,
      );
  }

  /** Upstream sessions already open (for fan-out of notifications). */
  async openUpstreams(): Promise<UpstreamSession[]> {
    const settled = await Promise.allSettled(this.#open.values());
    return settled.flatMap((r) => (r.status === 'fulfilled' && !r.value.closed ? [r.value] : []));
  }

  /** Rewrites a server→client request's id so the answer finds its way back to `upstream`. */
  rewriteForClient(upstream: string, m: JsonRpcMessage): JsonRpcMessage {
    if (isRequest(m)) return { ...m, id: this.#ids.serverRequest(this.id, upstream, m.id) };
    // The upstream cancels one of its own requests to the client: name it as the client knows it.
    if ('method' in m && m.method === 'notifications/cancelled') {
      const requestId = m.params?.requestId;
      if (typeof requestId === 'string' || typeof requestId === 'number') {
        return {
          ...m,
          params: { ...m.params, requestId: this.#ids.serverRequest(this.id, upstream, requestId) },
        };
      }
    }
    return m;
  }

  /** A message from an upstream outside any request: to the GET stream, or kept until one opens. */
  deliver(upstream: string, m: JsonRpcMessage): void {
    const out = this.inbound ? this.inbound(upstream, m) : this.rewriteForClient(upstream, m);
    if (out) this.sendToClient(out);
  }

  /** Tells the client its lists changed: now on its GET stream, or once when it opens one. */
  notifyListChanged(kinds: readonly string[]): void {
    for (const kind of kinds) {
      const m: JsonRpcMessage = { jsonrpc: '2.0', method: `notifications/${kind}/list_changed` };
      if (!this.#stream?.send(m)) this.#listChanged.add(kind);
    }
  }

  /** A message ready for the client (ids already rewritten): on the GET stream, or kept until one opens. */
  sendToClient(out: JsonRpcMessage): void {
    if (this.#stream?.send(out)) return;
    if (this.#pending.length >= MAX_PENDING) {
      const dropped = this.#pending.shift();
      if (dropped) this.onDrop?.(dropped);
    }
    this.#pending.push(out);
  }

  /** Attaches the client's GET stream (the edge refuses a second one) and flushes what was kept. */
  attachStream(stream: MessageStream): void {
    this.#stream = stream;
    const pending = this.#pending;
    this.#pending = [];
    for (const m of pending) stream.send(m);
    for (const kind of this.#listChanged)
      stream.send({ jsonrpc: '2.0', method: `notifications/${kind}/list_changed` });
    this.#listChanged.clear();
  }

  /** The stream closed: idle time counts from now, so the client can reconnect it at once. */
  detachStream(stream: MessageStream, now: number): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    this.record.lastSeenAt = now;
  }

  /** A new resumable stream for one POST's SSE answer. */
  openReplay(now: number): ReplayableStream {
    for (const [k, r] of this.#replay) {
      if (this.#replay.size < MAX_REPLAY_STREAMS && !(r.done && now - r.doneAt > REPLAY_TTL_MS)) break;
      this.#replay.delete(k);
    }
    const stream = new ReplayableStream(`s${++this.#replayNo}`);
    this.#replay.set(stream.key, stream);
    return stream;
  }

  /** The stream a Last-Event-ID points into, if it is still kept. */
  findReplay(lastEventId: string): { stream: ReplayableStream; seq: number } | undefined {
    const p = parseEventId(lastEventId);
    const stream = p && this.#replay.get(p.key);
    return stream && p ? { stream, seq: p.seq } : undefined;
  }

  endStream(): void {
    this.#stream?.close();
    this.#stream = undefined;
  }

  /** Records a request in flight; a client reusing an id while the first is in flight replaces it. */
  trackRequest(
    clientId: JsonRpcId,
    upstream: string,
  ): { key: string; tracked: { upstream: string; id: JsonRpcId } } {
    const key = idKey(clientId);
    const tracked = { upstream, id: clientId };
    this.#inflight.set(key, tracked);
    return { key, tracked };
  }

  untrackRequest(key: string, tracked: { upstream: string; id: JsonRpcId }): void {
    if (this.#inflight.get(key) === tracked) this.#inflight.delete(key);
    this.record.lastSeenAt = Date.now(); // a long call's end is activity too
  }

  /** A session with a request in flight is not idle, however long the request takes. */
  get busy(): boolean {
    return this.#inflight.size > 0;
  }

  /** The request in flight with this client id, if any (for notifications/cancelled). */
  inflightRequest(clientId: JsonRpcId): { upstream: string; id: JsonRpcId } | undefined {
    return this.#inflight.get(idKey(clientId));
  }

  /** Drops finished answer streams kept for a resume longer than they may be. */
  expireReplays(now: number): void {
    for (const [k, r] of this.#replay) if (r.done && now - r.doneAt > REPLAY_TTL_MS) this.#replay.delete(k);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream?.close();
    this.#stream = undefined;
    const sessions = await this.openUpstreams();
    this.#open.clear();
    this.#ready.clear();
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
