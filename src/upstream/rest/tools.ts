// REST operations as MCP tools, compiled once: each tool's input schema (a JSON Schema 2020-12 object built
// from its parameters and JSON body), its argument validator (ajv, compiled once), the plan that turns
// valid arguments into an HTTP request without ever letting an argument change the route, and its output
// schema with its validator (a structured result must match it: MCP clients reject one that does not).
// The shapes follow Kong's ai-mcp-proxy tools (OpenAPI 3 parameter and requestBody objects).
//
// Argument naming: a parameter keeps its own name. A JSON body that is an object contributes its
// properties as arguments too; one whose name a parameter already has is renamed `body_<name>` (a path
// parameter never moves: it names the route). A body that is not an object is one argument, `body`.
// Parameters of the same name in two locations (say `id` in path and query): the first (path, then query,
// header, cookie) keeps the name, the others become `<in>_<name>`.

import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export type JsonSchema = Record<string, unknown>;

export type ParamLocation = 'path' | 'query' | 'header' | 'cookie';

/** An OpenAPI 3 parameter object (the subset that matters for a request). */
export interface RestParameter {
  name: string;
  in: ParamLocation;
  required?: boolean | undefined;
  description?: string | undefined;
  schema?: JsonSchema | undefined;
  style?: string | undefined;
  explode?: boolean | undefined;
}

export interface RestAnnotations {
  title?: string | undefined;
  read_only_hint?: boolean | undefined;
  destructive_hint?: boolean | undefined;
  idempotent_hint?: boolean | undefined;
  open_world_hint?: boolean | undefined;
}

/** A tool declared by hand (Kong's shape) or generated from an OpenAPI operation. */
export interface RestToolSpec {
  name: string;
  description?: string | undefined;
  method: string;
  /** Relative to the upstream's base URL, with `{param}` placeholders. */
  path: string;
  parameters?: readonly RestParameter[] | undefined;
  /** An OpenAPI requestBody: `{ required?, description?, content: { 'application/json': { schema } } }`. */
  request_body?: Record<string, unknown> | undefined;
  /** OpenAPI responses: a 2xx JSON schema becomes the tool's outputSchema. */
  responses?: Record<string, unknown> | undefined;
  annotations?: RestAnnotations | undefined;
}

/** Where an argument goes. */
interface ArgPlan {
  arg: string;
  name: string;
  in: ParamLocation | 'body-field' | 'body';
  style: string;
  explode: boolean;
}

export interface CompiledRestTool {
  /** The MCP Tool object listed to clients. */
  tool: Record<string, unknown>;
  method: string;
  path: string;
  args: readonly ArgPlan[];
  /** The request body's media type (a JSON one, e.g. application/merge-patch+json), when it takes a body. */
  bodyType: string | undefined;
  /** Whether the tool's result is wrapped as `{ result: … }` to make an object (MCP needs one). */
  wrapsResult: boolean;
  hasOutputSchema: boolean;
  /** A message naming the first invalid argument and why, or undefined when valid. */
  check(args: Record<string, unknown>): string | undefined;
  /** For a tool with an output schema: where and why a structured result does not match it, or undefined. */
  checkOutput(structured: unknown): string | undefined;
}

export class RestToolError extends Error {}

const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);
const LOCATION_ORDER: Record<ParamLocation, number> = { path: 0, query: 1, header: 2, cookie: 3 };

let ajvInstance: Ajv2020 | undefined;
function ajv(): Ajv2020 {
  if (!ajvInstance) {
    // strict: false — real-world OpenAPI schemas carry keywords (example, xml, discriminator) ajv does not know.
    ajvInstance = new Ajv2020({ strict: false, allErrors: false, validateFormats: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajvInstance);
  }
  return ajvInstance;
}

/** The media type and schema of a requestBody's (or response's) JSON content, if it has one. */
function jsonContent(
  container: Record<string, unknown> | undefined,
): { type: string; schema: JsonSchema } | undefined {
  const content = container?.content;
  if (!content || typeof content !== 'object') return undefined;
  for (const [type, media] of Object.entries(content as Record<string, unknown>)) {
    if (/^application\/([\w.+-]+\+)?json\b/i.test(type) || type === '*/*') {
      const schema = (media as Record<string, unknown> | undefined)?.schema;
      return {
        type: type === '*/*' ? 'application/json' : type,
        schema: schema && typeof schema === 'object' ? (schema as JsonSchema) : {},
      };
    }
  }
  return undefined;
}

/** The 2xx JSON schema of a responses object (the lowest 2xx code first, then `2XX`, then `default`). */
function successSchema(responses: Record<string, unknown> | undefined): JsonSchema | undefined {
  if (!responses) return undefined;
  const codes = Object.keys(responses)
    .filter((c) => /^2\d\d$/.test(c))
    .sort();
  for (const code of [...codes, '2XX', '2xx']) {
    const json = jsonContent(responses[code] as Record<string, unknown> | undefined);
    if (json) return json.schema;
  }
  return undefined;
}

const isObjectSchema = (s: JsonSchema) =>
  s.type === 'object' || (s.type === undefined && typeof s.properties === 'object' && s.properties !== null);

const wireAnnotations = (a: RestAnnotations | undefined, method: string): Record<string, unknown> => {
  // Defaults from the method: GET/HEAD read only; DELETE destructive; PUT idempotent.
  const out: Record<string, unknown> = {};
  const readOnly = a?.read_only_hint ?? (method === 'GET' || method === 'HEAD' ? true : undefined);
  const destructive = a?.destructive_hint ?? (method === 'DELETE' ? true : undefined);
  const idempotent =
    a?.idempotent_hint ?? (method === 'PUT' || method === 'DELETE' || readOnly === true ? true : undefined);
  if (a?.title !== undefined) out.title = a.title;
  if (readOnly !== undefined) out.readOnlyHint = readOnly;
  if (destructive !== undefined && readOnly !== true) out.destructiveHint = destructive;
  if (idempotent !== undefined) out.idempotentHint = idempotent;
  if (a?.open_world_hint !== undefined) out.openWorldHint = a.open_world_hint;
  return out;
};

function describeError(e: ErrorObject, plans: readonly ArgPlan[]): string {
  // instancePath is /arg/…; a missing property is named by params.missingProperty.
  const parts = e.instancePath.split('/').slice(1);
  if (e.keyword === 'required' && parts.length === 0) {
    const missing = String((e.params as { missingProperty?: unknown }).missingProperty);
    return `missing required argument "${missing}"`;
  }
  if (e.keyword === 'additionalProperties' && parts.length === 0) {
    const extra = String((e.params as { additionalProperty?: unknown }).additionalProperty);
    const known = plans.map((p) => p.arg).join(', ') || '(none)';
    return `unknown argument "${extra}"; this tool takes: ${known}`;
  }
  // A JSON Pointer (RFC 6901): ~1 is '/', ~0 is '~'. Not percent-encoding (a key "%" must not throw).
  const unpointer = (p: string) => p.replaceAll('~1', '/').replaceAll('~0', '~');
  const where = parts.length === 0 ? 'arguments' : `argument "${parts.map(unpointer).join('.')}"`;
  return `${where} ${e.message ?? 'is invalid'}`;
}

/** Compiles one tool; throws RestToolError naming the tool and the problem. */
export function compileRestTool(spec: RestToolSpec): CompiledRestTool {
  const fail = (msg: string): never => {
    throw new RestToolError(`tool "${spec.name}": ${msg}`);
  };
  if (!NAME_RE.test(spec.name)) fail('a tool name is 1-128 characters of A-Z a-z 0-9 _ . -');
  const method = spec.method.toUpperCase();
  if (!METHODS.has(method)) fail(`unsupported method ${spec.method}`);
  if (!spec.path.startsWith('/')) fail(`the path must start with / (got ${spec.path})`);

  const params = [...(spec.parameters ?? [])].sort((a, b) => LOCATION_ORDER[a.in] - LOCATION_ORDER[b.in]);
  const placeholders = new Set([...spec.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!));
  for (const ph of placeholders) {
    if (!params.some((p) => p.in === 'path' && p.name === ph))
      fail(`the path names {${ph}} but no path parameter "${ph}" is declared`);
  }

  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  const plans: ArgPlan[] = [];
  const seen = new Set<string>();
  for (const p of params) {
    if (!(p.in in LOCATION_ORDER)) fail(`parameter "${p.name}" has an unknown location "${String(p.in)}"`);
    if (p.in === 'path' && !placeholders.has(p.name))
      fail(`path parameter "${p.name}" does not appear in the path ${spec.path}`);
    if (p.in === 'header' && /^(authorization|cookie|host|content-length|transfer-encoding)$/i.test(p.name))
      fail(`header parameter "${p.name}" is not allowed (the gateway sets it)`);
    let arg = p.name;
    if (seen.has(arg)) arg = `${p.in}_${p.name}`;
    if (seen.has(arg)) fail(`parameter "${p.name}" is declared twice in ${p.in}`);
    seen.add(arg);
    const schema: JsonSchema = { ...(p.schema ?? { type: 'string' }) };
    if (p.description !== undefined && schema.description === undefined) schema.description = p.description;
    properties[arg] = schema;
    if (p.required || p.in === 'path') required.push(arg);
    plans.push({
      arg,
      name: p.name,
      in: p.in,
      style: p.style ?? (p.in === 'query' || p.in === 'cookie' ? 'form' : 'simple'),
      explode: p.explode ?? (p.style === undefined || p.style === 'form'),
    });
  }

  const bodyContent = jsonContent(spec.request_body);
  const body = bodyContent?.schema;
  if (spec.request_body && !body) fail('only JSON request bodies (content application/json) are supported');
  if (body) {
    const bodyRequired = spec.request_body?.required === true;
    const bodyProps = body.properties as Record<string, JsonSchema> | undefined;
    if (isObjectSchema(body) && bodyProps && body.additionalProperties !== true) {
      const bodyReq = new Set(Array.isArray(body.required) ? (body.required as string[]) : []);
      for (const [name, schema] of Object.entries(bodyProps)) {
        const arg = seen.has(name) ? `body_${name}` : name;
        if (seen.has(arg)) fail(`body field "${name}" collides with argument "${arg}"`);
        seen.add(arg);
        properties[arg] = schema;
        if (bodyRequired && bodyReq.has(name)) required.push(arg);
        plans.push({ arg, name, in: 'body-field', style: '', explode: false });
      }
    } else {
      if (seen.has('body')) fail('a parameter named "body" collides with the request body');
      seen.add('body');
      const schema: JsonSchema = { ...body };
      const desc = spec.request_body?.description;
      if (typeof desc === 'string' && schema.description === undefined) schema.description = desc;
      properties.body = schema;
      if (bodyRequired) required.push('body');
      plans.push({ arg: 'body', name: 'body', in: 'body', style: '', explode: false });
    }
  }

  const inputSchema: JsonSchema = {
    type: 'object',
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
  let validate: ValidateFunction;
  try {
    validate = ajv().compile({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...inputSchema });
  } catch (err) {
    return fail(`its input schema does not compile: ${err instanceof Error ? err.message : String(err)}`);
  }

  const output = successSchema(spec.responses);
  let outputSchema: JsonSchema | undefined;
  let wrapsResult = false;
  if (output) {
    if (isObjectSchema(output)) outputSchema = output;
    else {
      wrapsResult = true;
      outputSchema = { type: 'object', properties: { result: output }, required: ['result'] };
    }
  }

  let validateOutput: ValidateFunction | undefined;
  if (outputSchema) {
    try {
      validateOutput = ajv().compile({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        ...outputSchema,
      });
    } catch (err) {
      return fail(`its output schema does not compile: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  const tool: Record<string, unknown> = {
    name: spec.name,
    ...(spec.annotations?.title !== undefined ? { title: spec.annotations.title } : {}),
    description: spec.description ?? `${method} ${spec.path}`,
    inputSchema,
  };
  if (outputSchema) tool.outputSchema = outputSchema;
  const annotations = wireAnnotations(spec.annotations, method);
  if (Object.keys(annotations).length > 0) tool.annotations = annotations;

  return {
    tool,
    method,
    path: spec.path,
    args: plans,
    bodyType: bodyContent?.type,
    wrapsResult,
    hasOutputSchema: outputSchema !== undefined,
    check(args) {
      if (validate(args)) return undefined;
      return describeError(validate.errors![0]!, plans);
    },
    checkOutput(structured) {
      if (!validateOutput || validateOutput(structured)) return undefined;
      const e = validateOutput.errors![0]!;
      return `${e.instancePath || '(the result)'} ${e.message ?? 'is invalid'}`;
    },
  };
}

const scalar = (v: unknown): string => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** The text as an API decoding it (up to three times over) would see it; malformed escapes kept. */
function decoded(text: string): string {
  let s = text;
  for (let i = 0; i < 3 && s.includes('%'); i++) {
    const next = s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) =>
      String.fromCharCode(Number.parseInt(h, 16)),
    );
    if (next === s) break;
    s = next;
  }
  return s;
}

/**
 * A path segment from an argument: encoded whole, never empty, and never holding a dot segment — not even
 * between slashes or backslashes, nor percent-encoded, nor with a `;` matrix parameter (`..;x`): the argument
 * is sent encoded, but an API (or a proxy before it) that decodes `%2F`, `%5C`, `%2E` or `%3B` before routing,
 * or strips path parameters, would otherwise walk up the route.
 */
function pathSegment(arg: string, v: unknown): string {
  const text = Array.isArray(v) ? v.map(scalar).join(',') : scalar(v);
  if (
    text === '' ||
    decoded(text)
      .split(/[/\\]/)
      .some((seg) => /^\.\.?(;|$)/.test(seg))
  )
    throw new RestToolError(
      `argument "${arg}" cannot be ${JSON.stringify(text)}: it is empty or holds a . or .. segment (it would change the path)`,
    );
  return encodeURIComponent(text);
}

/** What an HTTP field value may hold (RFC 9110 §5.5; undici refuses the rest, and CR/LF would split the request). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Query pairs for one parameter, per its OpenAPI style. */
function queryPairs(plan: ArgPlan, v: unknown, out: [string, string][]): void {
  if (Array.isArray(v)) {
    if (plan.explode && plan.style === 'form') for (const x of v) out.push([plan.name, scalar(x)]);
    else {
      const sep = plan.style === 'spaceDelimited' ? ' ' : plan.style === 'pipeDelimited' ? '|' : ',';
      out.push([plan.name, v.map(scalar).join(sep)]);
    }
    return;
  }
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (plan.style === 'deepObject')
      for (const [k, x] of entries) out.push([`${plan.name}[${k}]`, scalar(x)]);
    else if (plan.explode) for (const [k, x] of entries) out.push([k, scalar(x)]);
    else out.push([plan.name, entries.flatMap(([k, x]) => [k, scalar(x)]).join(',')]);
    return;
  }
  out.push([plan.name, scalar(v)]);
}

export interface BuiltRequest {
  method: string;
  /** Path and query, relative to the origin, under the base path. */
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/**
 * The HTTP request for valid arguments. `basePath` is the base URL's path (no trailing slash). Header
 * values with line breaks are refused (they would split the request), and so is an argument that would set
 * one of the `reservedQuery` names (the upstream's static query: an API reading the first of two `tenant`
 * parameters would otherwise take the caller's).
 */
export function buildRequest(
  t: CompiledRestTool,
  args: Record<string, unknown>,
  basePath: string,
  reservedQuery?: ReadonlySet<string>,
): BuiltRequest {
  const byArg = new Map(t.args.map((p) => [p.arg, p]));
  let path = t.path;
  const query: [string, string][] = [];
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  let body: unknown;
  let bodyObject: Record<string, unknown> | undefined;
  for (const [arg, v] of Object.entries(args)) {
    const plan = byArg.get(arg);
    // null omits a parameter, but is a value in a JSON body (clearing a nullable field, say).
    if (!plan || v === undefined || (v === null && plan.in !== 'body-field' && plan.in !== 'body')) continue;
    switch (plan.in) {
      case 'path':
        path = path.replaceAll(`{${plan.name}}`, pathSegment(arg, v));
        break;
      case 'query': {
        const from = query.length;
        queryPairs(plan, v, query);
        for (let i = from; reservedQuery && i < query.length; i++) {
          const name = query[i]![0];
          if (reservedQuery.has(name))
            throw new RestToolError(
              `argument "${arg}" would set the query parameter "${name}", which the gateway sets for this API`,
            );
        }
        break;
      }
      case 'header': {
        const text = Array.isArray(v) ? v.map(scalar).join(',') : scalar(v);
        if (/[\r\n]/.test(text)) throw new RestToolError(`argument "${arg}" cannot contain line breaks`);
        if (!FIELD_VALUE.test(text))
          throw new RestToolError(
            `argument "${arg}" holds characters an HTTP header cannot carry (control characters, or beyond U+00FF)`,
          );
        headers[plan.name.toLowerCase()] = text;
        break;
      }
      case 'cookie':
        cookies.push(`${plan.name}=${encodeURIComponent(scalar(v))}`);
        break;
      case 'body-field':
        bodyObject ??= {};
        bodyObject[plan.name] = v;
        break;
      case 'body':
        body = v;
        break;
    }
  }
  if (cookies.length > 0) headers.cookie = cookies.join('; ');
  const payload = bodyObject ?? body;
  const qs = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  if (payload !== undefined) headers['content-type'] = t.bodyType ?? 'application/json';
  return {
    method: t.method,
    path: `${basePath}${path}${qs ? `?${qs}` : ''}`,
    headers,
    body: payload === undefined ? undefined : JSON.stringify(payload),
  };
}
