// The official conformance suite through the gateway, compared with the same suite run directly against
// the same upstream: everything that passes directly must pass through the gateway, check by check, and
// the gateway itself must pass DNS-rebinding protection whatever is behind it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConformanceServer, startConformanceServer } from '../fixtures/conformance-server.ts';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { type RunningGateway, singleUpstreamConfig, startGateway } from '../helpers/gateway.ts';
import { type ConformanceResult, listServerScenarios, runConformance } from './run-conformance.ts';

const RUN_TIMEOUT_MS = 180_000;

/** Per scenario, how many checks the suite marked SUCCESS. */
function successes(r: ConformanceResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [scenario, checks] of Object.entries(r.checks))
    out[scenario] = checks.filter((c) => c.status === 'SUCCESS').length;
  return out;
}

/**
 * Differences that are the gateway's by design, not regressions:
 * - `server-sse-multiple-streams` sends three concurrent tools/list; the gateway answers lists from its
 *   catalogue, as JSON (the transport lets a server choose), so the suite's "SSE streams functional" check
 *   becomes INFO ("SSE streams optional") instead of SUCCESS. Concurrent POST streams stay accepted.
 * - `tools-call-simple-text` and `tools-call-error` "pass" against server-everything only because it answers
 *   an unknown tool with an isError result whose text satisfies the checks; the gateway refuses an unknown
 *   tool itself with JSON-RPC -32602 (as the MCP specification's example does), so they fail through it.
 */
const BY_DESIGN_FEWER_SUCCESS = new Set(['server-sse-multiple-streams']);
const FALSE_PASSES_OF_EVERYTHING = new Set(['tools-call-simple-text', 'tools-call-error']);

/** Every scenario passing directly passes through the gateway, with at least as many SUCCESS checks. */
function expectNoRegression(
  direct: ConformanceResult,
  via: ConformanceResult,
  ignore: ReadonlySet<string> = new Set(),
): void {
  const viaPassed = new Set(via.passed);
  const lost = direct.passed.filter((s) => !viaPassed.has(s) && !ignore.has(s));
  expect(lost, `scenarios passing directly but not through the gateway: ${lost.join(', ')}`).toEqual([]);
  const d = successes(direct);
  const v = successes(via);
  const weaker = direct.passed
    .filter((s) => !BY_DESIGN_FEWER_SUCCESS.has(s) && !ignore.has(s))
    .filter((s) => (v[s] ?? 0) < (d[s] ?? 0))
    .map((s) => `${s} (${v[s] ?? 0} < ${d[s]})`);
  expect(weaker, 'scenarios with fewer SUCCESS checks through the gateway').toEqual([]);
}

function summary(name: string, direct: ConformanceResult, via: ConformanceResult): string {
  return `${name}: directly ${direct.passed.length}/${direct.passed.length + direct.failed.length}, through the gateway ${via.passed.length}/${via.passed.length + via.failed.length}`;
}

describe('conformance suite through the gateway', () => {
  let fixture: ConformanceServer | undefined;
  let everything: EverythingServer | undefined;
  let gwFixture: RunningGateway | undefined;
  let gwEverything: RunningGateway | undefined;

  beforeAll(async () => {
    fixture = await startConformanceServer();
    everything = await startEverything();
    gwFixture = await startGateway(singleUpstreamConfig(fixture.url));
    gwEverything = await startGateway(singleUpstreamConfig(everything.url));
  });

  afterAll(async () => {
    await Promise.all([gwFixture?.close(), gwEverything?.close()]);
    await Promise.all([fixture?.close(), everything?.close()]);
  });

  it(
    'in front of the conformance fixture: every server scenario passes, as directly, without warnings',
    async () => {
      const scenarios = await listServerScenarios();
      const direct = await runConformance(fixture!.url);
      const via = await runConformance(`${gwFixture!.base}/mcp`);
      console.info(summary('conformance fixture', direct, via));
      expect(via.failed).toEqual([]);
      expect(via.warnings).toEqual([]);
      expect([...via.passed].sort()).toEqual([...scenarios].sort());
      expectNoRegression(direct, via);
      // The upstream pauses its stream mid-call (polling); the gateway mirrors the pause and the client
      // resumes through the gateway with Last-Event-ID: the resume is exercised, not reported as INFO.
      const resume = via.checks['server-sse-polling']?.find((c) => c.id === 'server-sse-disconnect-resume');
      expect(resume?.status).toBe('SUCCESS');
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'in front of server-everything: everything that passes directly passes, and DNS-rebinding protection too',
    async () => {
      const direct = await runConformance(everything!.url);
      const via = await runConformance(`${gwEverything!.base}/mcp`);
      console.info(summary('server-everything', direct, via));
      expectNoRegression(direct, via, FALSE_PASSES_OF_EVERYTHING);
      expect(via.passed).toContain('dns-rebinding-protection');
    },
    RUN_TIMEOUT_MS,
  );
});
