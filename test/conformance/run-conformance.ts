// Runs the official MCP conformance suite (`@modelcontextprotocol/conformance`, server side) against a URL
// and turns its per-scenario checks.json files into passed / failed / warned scenario lists.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** One check as the suite records it in checks.json. */
export type ConformanceCheck = {
  id: string;
  name: string;
  description: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED' | string;
  errorMessage?: string;
  details?: unknown;
};

export type ScenarioProblem = { scenario: string; detail: string };

export type ConformanceResult = {
  /** Scenarios without a FAILURE check (the suite's own criterion; warnings are reported separately). */
  passed: string[];
  /** Scenarios with a FAILURE check, or that produced no result at all (crash, timeout). */
  failed: ScenarioProblem[];
  /** Scenarios with WARNING checks (SHOULD-level findings), whether they passed or not. */
  warnings: ScenarioProblem[];
  /** Every scenario's checks, for comparisons finer than pass/fail. */
  checks: Record<string, ConformanceCheck[]>;
  /** The CLI's stdout and stderr. */
  raw: string;
};

export type ConformanceOptions = {
  /** Run only these scenarios (one CLI process each); default: every server scenario in one process. */
  scenarios?: string[];
  /** Bound on the whole run; the CLI is killed when it expires. Default 120 s. */
  timeoutMs?: number;
};

const DEFAULT_TIMEOUT_MS = 120_000;
// Result folders are named `server-<scenario>-<ISO timestamp with : and . replaced by ->`.
const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;
const STARTED = /^=== Running scenario: (.+) ===$/gm;

function cliPath(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@modelcontextprotocol/conformance/package.json');
  return join(dirname(manifest), 'dist/index.js');
}

type CliRun = { output: string; timedOut: boolean };

function runCli(args: string[], timeoutMs: number): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [cliPath(), ...args], {
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let timedOut = false;
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    // 'close' rather than 'exit': all output has been read by then.
    child.once('close', () => {
      clearTimeout(timer);
      done({ output, timedOut });
    });
  });
}

async function readChecks(outputDir: string): Promise<Map<string, ConformanceCheck[]>> {
  const found = new Map<string, ConformanceCheck[]>();
  for (const entry of await readdir(outputDir)) {
    const scenario = RESULT_DIR.exec(entry)?.[1];
    if (scenario === undefined) continue;
    const text = await readFile(join(outputDir, entry, 'checks.json'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const checks: unknown = JSON.parse(text);
    if (Array.isArray(checks)) found.set(scenario, checks as ConformanceCheck[]);
  }
  return found;
}

function describe(checks: ConformanceCheck[], status: string): string {
  return checks
    .filter((check) => check.status === status)
    .map((check) => `${check.name}: ${check.errorMessage ?? check.description}`)
    .join('; ');
}

/** The names of the suite's server scenarios (`conformance list`), pending ones included. */
export async function listServerScenarios(timeoutMs = 30_000): Promise<string[]> {
  const { output, timedOut } = await runCli(['list'], timeoutMs);
  if (timedOut) throw new Error(`conformance list did not answer within ${timeoutMs} ms`);
  const section = output.split(/^Server scenarios.*$/m)[1]?.split(/^\S.*$/m)[0] ?? '';
  return [...section.matchAll(/^\s+- (\S+)/gm)].map((match) => match[1] as string);
}

/** Runs the suite's server scenarios against `url` and reports each scenario's outcome. */
export async function runConformance(url: string, opts: ConformanceOptions = {}): Promise<ConformanceResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const outputDir = await mkdtemp(join(tmpdir(), 'gatehouse-conformance-'));
  try {
    const base = ['server', '--url', url, '--output-dir', outputDir];
    let raw = '';
    let timedOut = false;
    const expected: string[] = [];
    if (opts.scenarios === undefined) {
      // One process for the whole suite: the scenarios run one after another in it. `all` includes the
      // "pending" scenarios (json-schema-2020-12, server-sse-polling) that `active` leaves out.
      const run = await runCli([...base, '--suite', 'all'], timeoutMs);
      raw = run.output;
      timedOut = run.timedOut;
      for (const match of raw.matchAll(STARTED)) if (match[1] !== undefined) expected.push(match[1]);
    } else {
      const deadline = Date.now() + timeoutMs;
      for (const scenario of opts.scenarios) {
        expected.push(scenario);
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          timedOut = true;
          break;
        }
        const run = await runCli([...base, '--scenario', scenario], remaining);
        raw += run.output;
        timedOut ||= run.timedOut;
      }
    }

    const found = await readChecks(outputDir);
    const result: ConformanceResult = { passed: [], failed: [], warnings: [], checks: {}, raw };
    for (const scenario of expected) {
      const checks = found.get(scenario);
      if (checks === undefined) {
        const reason = timedOut ? `timed out after ${timeoutMs} ms` : 'the suite recorded no result';
        result.failed.push({ scenario, detail: `no result: ${reason} (see raw output)` });
        continue;
      }
      result.checks[scenario] = checks;
      if (checks.some((check) => check.status === 'FAILURE')) {
        result.failed.push({ scenario, detail: describe(checks, 'FAILURE') });
      } else {
        result.passed.push(scenario);
      }
      if (checks.some((check) => check.status === 'WARNING')) {
        result.warnings.push({ scenario, detail: describe(checks, 'WARNING') });
      }
    }
    if (expected.length === 0) {
      result.failed.push({ scenario: '(suite)', detail: `the suite ran no scenario:\n${raw}` });
    }
    return result;
  } finally {
    await rm(outputDir, { recursive: true, force: true });
  }
}
