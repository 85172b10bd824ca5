// `gatehouse openapi <file-or-url> [--name NAME] [--base-url URL]`: an OpenAPI document as the YAML of a REST
// upstream whose tools are written out inline (`upstreams: { NAME: { type: rest, base_url, tools } }`), for
// a team to review, edit and commit instead of generating the tools at every start. The YAML goes to stdout,
// with what was approximated or skipped as comments at its top; a one-line summary goes to stderr. Exit 0
// when the YAML was printed (it is checked to be a valid config first), 1 when the document is unreadable
// or invalid or yields no usable config.

import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.ts';
import { loadOpenApi, toolsFromOpenApi } from '../upstream/rest/openapi.ts';
import { compileRestTool, type RestAnnotations } from '../upstream/rest/tools.ts';

const UPSTREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export interface OpenApiCommandIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Relative document paths resolve against this directory. */
  cwd: string;
}

export async function openapiCommand(
  source: string,
  flags: { name?: string | undefined; baseUrl?: string | undefined },
  io: Partial<OpenApiCommandIo> = {},
): Promise<number> {
  const stdout = io.stdout ?? ((s: string) => process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string) => process.stderr.write(s));
  const fail = (msg: string) => {
    stderr(`gatehouse: ${msg}\n`);
    return 1;
  };

  let doc: Record<string, unknown>;
  let generated: ReturnType<typeof toolsFromOpenApi>;
  try {
    doc = await loadOpenApi(source, io.cwd ?? process.cwd());
    generated = toolsFromOpenApi(doc);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  const info = (doc.info ?? {}) as { title?: unknown; version?: unknown };
  const name = flags.name ?? upstreamName(typeof info.title === 'string' ? info.title : '');
  if (!UPSTREAM_NAME.test(name))
    return fail(`--name ${JSON.stringify(name)}: upstream names use letters, digits, _ and - (64 at most)`);
  const baseUrl = flags.baseUrl ?? generated.baseUrl;
  if (!baseUrl || !/^https?:\/\//i.test(baseUrl))
    return fail(
      `${source} gives no absolute server URL${baseUrl ? ` (only ${baseUrl})` : ''}: pass --base-url`,
    );

  const notes = [...generated.notes];
  const tools: Record<string, unknown>[] = [];
  for (const spec of generated.tools) {
    try {
      compileRestTool(spec);
    } catch (err) {
      notes.push(`skipped: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    tools.push({
      name: spec.name,
      ...(spec.description !== undefined ? { description: spec.description } : {}),
      method: spec.method,
      path: spec.path,
      ...(spec.parameters && spec.parameters.length > 0 ? { parameters: spec.parameters } : {}),
      ...(spec.request_body ? { request_body: spec.request_body } : {}),
      ...(spec.responses ? { responses: spec.responses } : {}),
      ...(hasAnnotations(spec.annotations) ? { annotations: spec.annotations } : {}),
    });
  }
  if (tools.length === 0) return fail(`${source}: no operation could be made a tool`);

  // Config strings are interpolated (${VAR}, $$): every `$` of the document is written as `$$`.
  const upstream = escapeDollars({ type: 'rest', base_url: baseUrl, tools }) as Record<string, unknown>;
  const title = [info.title, info.version].filter((x) => typeof x === 'string').join(' ');
  const header = [
    `Generated from ${source}${title ? ` (${title})` : ''} by \`gatehouse openapi\`: ${tools.length} tools.`,
    'Review it, then add the upstream to a route. Headers, query and auth (API keys) are yours to add.',
    ...(notes.length > 0 ? ['', 'Notes:', ...notes.map((n) => `- ${n}`)] : []),
  ];
  const yaml = `${header.map((l) => `#${l ? ` ${l}` : ''}`.replace(/[\r\n]+/g, ' ')).join('\n')}\n${stringify(
    { upstreams: { [name]: upstream } },
    { lineWidth: 110, aliasDuplicateObjects: false },
  )}`;

  // What is printed must be a valid config once a route serves it.
  try {
    parseConfig(`${yaml}routes: [{ path: /mcp, upstreams: [${name}] }]\n`, 'generated.yaml', {});
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return fail(`the generated config is not valid (please report it):\n${err.message}`);
  }
  stdout(yaml);
  stderr(
    `generated upstream "${name}" with ${tools.length} tools from ${source}${notes.length > 0 ? `; ${notes.length} notes (at the top of the YAML)` : ''}\n`,
  );
  return 0;
}

/** An upstream name from the document's title: "Pet Shelter API" → pet-shelter-api. */
function upstreamName(title: string): string {
  const s = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return s || 'api';
}

const hasAnnotations = (a: RestAnnotations | undefined) =>
  a !== undefined && Object.values(a).some((v) => v !== undefined);

function escapeDollars(v: unknown): unknown {
  if (typeof v === 'string') return v.replaceAll('$', () => '$$');
  if (Array.isArray(v)) return v.map(escapeDollars);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, escapeDollars(x)]));
  return v;
}
