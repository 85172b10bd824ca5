// Loads a YAML config: ${ENV} / ${ENV:-default} interpolation in string values, schema validation,
// and errors that name the YAML path, the line, and what would be valid.

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { type Config, configSchema, type SecretRef } from './schema.ts';

export interface ConfigProblem {
  path: string;
  line?: number;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  readonly problems: ConfigProblem[];
  readonly file: string;

  constructor(file: string, problems: ConfigProblem[]) {
    super(`${file}: invalid configuration\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.line ? `line ${p.line}: ` : ''}${p.path || '(root)'}: ${p.message}`;
}

export interface LoadedConfig {
  config: Config;
  file: string;
  /** Relative paths in the config (TLS files, secret files) resolve against this directory. */
  baseDir: string;
  /** The environment the config was read with; `{ env }` secrets resolve from it too. */
  env?: NodeJS.ProcessEnv;
}

export async function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file (pass -c/--config or set GATEHOUSE_CONFIG)' : e.message;
    throw new ConfigError(path, [{ path: '', message: `cannot read config: ${why}` }]);
  }
  return { config: parseConfig(text, path, env), file: path, baseDir: dirname(path), env };
}

const WHOLE_VARIABLE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

function typedScalar(v: string): string | number | boolean {
  if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

const INTERPOLATION = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Parses and validates config text; throws ConfigError listing every problem found. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        path: '',
        line: lineOf(e.pos[0]),
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
      })),
    );
  }
  const problems: ConfigProblem[] = [];
  interpolate(doc.contents, [], env, (path, node, message) =>
    problems.push({ path: path.join('.'), line: lineOf(node.range?.[0]), message }),
  );
  if (problems.length > 0) throw new ConfigError(file, problems);

  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  throw new ConfigError(
    file,
    result.error.issues.flatMap((issue): ConfigProblem[] => {
      if (issue.code === 'unrecognized_keys') {
        // One problem per key, located at the key itself rather than at its parent.
        return issue.keys.map((key) => ({
          path: [...issue.path, key].map(String).join('.'),
          line: lineOf(keyNode(doc, issue.path, key)?.range?.[0] ?? nearestNode(doc, issue.path)?.range?.[0]),
          message: 'unknown key (check the spelling against the configuration reference)',
        }));
      }
      // A bad record key (e.g. an upstream name) is located at the key, not at its value.
      const last = issue.path[issue.path.length - 1];
      const at =
        issue.code === 'invalid_key' && typeof last === 'string'
          ? keyNode(doc, issue.path.slice(0, -1), last)
          : nearestNode(doc, issue.path);
      return [
        {
          path: issue.path.map(String).join('.'),
          line: lineOf(at?.range?.[0]),
          message: describeIssue(issue),
        },
      ];
    }),
  );
}

function keyNode(doc: Document, path: readonly PropertyKey[], key: string): Node | undefined {
  const parent = path.length === 0 ? doc.contents : doc.getIn(path as (string | number)[], true);
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
  return isScalar(pair?.key) ? pair.key : undefined;
}

function interpolate(
  node: unknown,
  path: (string | number)[],
  env: NodeJS.ProcessEnv,
  report: (path: (string | number)[], node: Node, message: string) => void,
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      interpolate(pair.value, [...path, key], env, report);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      interpolate(item, [...path, i], env, report);
    });
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('$')) {
    const whole = node.type === 'PLAIN' && WHOLE_VARIABLE.test(node.value);
    const value = node.value.replace(
      INTERPOLATION,
      (match, name: string | undefined, def: string | undefined) => {
        if (match === '$$') return '$';
        const v = env[name!];
        if (v !== undefined && v !== '') return v;
        if (def !== undefined) return def;
        report(
          path,
          node,
          `environment variable ${name} is not set (use \${${name}:-default} to give a default)`,
        );
        return '';
      },
    );
    // An unquoted `port: ${PORT}` reads as YAML would read the value written in place: a number or boolean.
    node.value = whole ? typedScalar(value) : value;
  }
}

function nearestNode(doc: Document, path: readonly PropertyKey[]): Node | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (node && typeof node === 'object' && 'range' in node) return node as Node;
  }
  return undefined;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_key':
      // The key's own schema says what a valid key is.
      return issue.issues[0]?.message ?? issue.message;
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator)
        return `${issue.message} (field "${issue.discriminator}")`;
      return issue.message;
    case 'invalid_value':
      return `${issue.message.replace(/^Invalid option: expected one of /, 'must be one of ')}`;
    default:
      return issue.message;
  }
}

/** Resolves a secret reference ({ env } / { file }) to its value. Never log the result. */
export async function resolveSecret(
  ref: SecretRef,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (typeof ref === 'string') return ref;
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined)
      throw new ConfigError('(secrets)', [
        { path: '', message: `secret environment variable ${ref.env} is not set` },
      ]);
    return v;
  }
  try {
    return (await readFile(resolve(baseDir, ref.file), 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError('(secrets)', [
      { path: '', message: `cannot read secret file ${ref.file}: ${(err as Error).message}` },
    ]);
  }
}
