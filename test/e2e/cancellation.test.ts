// notifications/cancelled through the gateway: the SDK client aborts a call; the upstream receives the
// cancellation naming *its* id for the call (not the client's), and the gateway stays usable.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hangAfterProgress,
  type MisbehavingUpstream,
  startMisbehavingUpstream,
} from '../fixtures/misbehaving-upstream.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';

describe('cancellation across the hop', () => {
  let upstream: MisbehavingUpstream;
  let gw: RunningGateway;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream({ tools: { stuck: hangAfterProgress } });
    gw = await startGateway(singleUpstreamConfig(upstream.url));
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('forwards the cancel with the upstream id of the call, and the session goes on', async () => {
    const client = new Client({ name: 'cancel-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`)));
    try {
      const controller = new AbortController();
      const progressed = new Promise<void>((resolve) => {
        void client
          .callTool({ name: 'stuck', arguments: {} }, undefined, {
            signal: controller.signal,
            onprogress: () => resolve(),
          })
          .catch(() => {});
      });
      await progressed;
      controller.abort('user changed their mind');

      const posts = () =>
        upstream.received
          .filter((r) => r.httpMethod === 'POST')
          .map((r) => r.body as Record<string, unknown>);
      await expect
        .poll(() => posts().some((b) => b.method === 'notifications/cancelled'), { timeout: 5_000 })
        .toBe(true);
      const call = posts().find(
        (b) => b.method === 'tools/call' && (b.params as { name?: string }).name === 'stuck',
      )!;
      const cancel = posts().find((b) => b.method === 'notifications/cancelled')!;
      expect((cancel.params as { requestId: unknown }).requestId).toBe(call.id);
      expect((cancel.params as { reason?: unknown }).reason).toBe('user changed their mind');

      const echo = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
      expect(JSON.stringify(echo.content)).toContain('still here');
    } finally {
      await client.close();
    }
  });
});
