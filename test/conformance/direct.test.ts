// The conformance baseline without the gateway: what the official suite says about our upstreams when a
// client talks to them directly. The through-the-gateway test compares itself against these results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConformanceServer, startConformanceServer } from '../fixtures/conformance-server.ts';
import { type EverythingServer, startEverything } from '../fixtures/everything.ts';
import { listServerScenarios, runConformance } from './run-conformance.ts';

const RUN_TIMEOUT_MS = 120_000;

/**
 * Scenarios server-everything genuinely passes (it does not implement the suite's test_* tools, resources
 * and prompts). tools-call-simple-text and tools-call-error also "pass" against it, but only because
 * calling an unknown tool returns an isError result whose text satisfies those checks.
 */
const EVERYTHING_GENUINE_PASSES = [
  'server-initialize',
  'logging-set-level',
  'ping',
  'tools-list',
  'server-sse-multiple-streams',
  'resources-list',
  'resources-subscribe',
  'resources-unsubscribe',
  'prompts-list',
];

describe('conformance suite, directly against the upstream', () => {
  let fixture: ConformanceServer | undefined;
  let everything: EverythingServer | undefined;

  beforeAll(async () => {
    // One after the other, so that a failed start leaves nothing running that afterAll cannot see.
    fixture = await startConformanceServer();
    everything = await startEverything();
  });

  afterAll(async () => {
    await Promise.all([fixture?.close(), everything?.close()]);
  });

  it(
    'the conformance fixture passes every server scenario, without warnings',
    async () => {
      const [scenarios, result] = await Promise.all([listServerScenarios(), runConformance(fixture!.url)]);
      expect(scenarios.length).toBeGreaterThan(0);
      expect(result.failed).toEqual([]);
      expect(result.warnings).toEqual([]);
      expect([...result.passed].sort()).toEqual([...scenarios].sort());
      // The fixture closes the POST stream of test_reconnection mid-call, so the resumption path (GET with
      // Last-Event-ID) is really exercised rather than reported as INFO.
      const resume = result.checks['server-sse-polling']?.find(
        (c) => c.id === 'server-sse-disconnect-resume',
      );
      expect(resume?.status).toBe('SUCCESS');
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'server-everything passes the scenarios that do not need the test_* tools',
    async () => {
      const result = await runConformance(everything!.url);
      console.info(
        `server-everything, directly: ${result.passed.length} passed (${result.passed.join(', ')}); ` +
          `${result.failed.length} failed (${result.failed.map((f) => f.scenario).join(', ')})`,
      );
      expect(result.passed.length).toBeGreaterThan(0);
      expect(result.passed).toEqual(expect.arrayContaining(EVERYTHING_GENUINE_PASSES));
    },
    RUN_TIMEOUT_MS,
  );
});
