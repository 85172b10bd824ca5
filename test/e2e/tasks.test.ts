// Tasks (2025-11-25) across an aggregating route: server-everything's task-only tool, reached through a
// route that also serves our demo server. Task ids are rewritten to name their upstream, and every
// tasks/* request finds its way back with the upstream's own id.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from '../../src/demo/demo-server.ts';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { type RunningGateway, startGateway } from '../helpers/gateway.ts';

type Msg = Record<string, unknown>;

describe('tasks through an aggregating route', () => {
  let everything: EverythingServer;
  let demo: DemoServer;
  let gw: RunningGateway;
  let url: string;
  let sid: string;
  let nextId = 1;

  async function rpc(method: string, params: Msg): Promise<Msg> {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sid,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    });
    const text = await res.text();
    if (res.headers.get('content-type')?.startsWith('application/json')) return JSON.parse(text) as Msg;
    const messages = text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)) as Msg);
    return messages.find((m) => 'result' in m || 'error' in m)!;
  }

  beforeAll(async () => {
    everything = await startEverything();
    demo = await startDemoServer();
    gw = await startGateway(`
upstreams:
  ev: { type: streamable-http, url: "${everything.url}" }
  demo: { type: streamable-http, url: "${demo.url}" }
routes:
  - path: /mcp
    upstreams: [ev, demo]
health: { interval: 0 }
`);
    url = `${gw.base}/mcp`;
    const init = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'tasks-test', version: '1' },
        },
      }),
    });
    sid = init.headers.get('mcp-session-id')!;
    const result = ((await init.json()) as { result: { capabilities: Msg } }).result;
    expect(result.capabilities.tasks).toBeDefined();
  });
  afterAll(async () => {
    await gw?.close();
    await demo?.close();
    await everything?.close();
  });

  it('creates a task, and tasks/get, tasks/list and tasks/result reach the upstream that runs it', async () => {
    const created = await rpc('tools/call', {
      name: 'simulate-research-query',
      arguments: { topic: 'gateways' },
      task: { ttl: 60_000 },
    });
    const task = (created.result as { task?: { taskId: string; status: string } }).task;
    expect(task, JSON.stringify(created)).toBeDefined();
    // The client sees an id that names the upstream, not the upstream's own.
    expect(task!.taskId.startsWith('gh1t.')).toBe(true);

    const got = await rpc('tasks/get', { taskId: task!.taskId });
    expect((got.result as { taskId: string }).taskId).toBe(task!.taskId);

    const listed = await rpc('tasks/list', {});
    expect(((listed.result as { tasks: { taskId: string }[] }).tasks ?? []).map((t) => t.taskId)).toContain(
      task!.taskId,
    );

    const result = await rpc('tasks/result', { taskId: task!.taskId });
    expect(JSON.stringify(result.result)).toContain('gateways');
  });

  it('an unknown or foreign task id is refused with -32602 before any upstream is asked', async () => {
    const res = await rpc('tasks/get', { taskId: 'not-one-of-ours' });
    expect((res.error as { code: number }).code).toBe(-32602);
  });
});
