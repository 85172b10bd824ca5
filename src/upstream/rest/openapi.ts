// OpenAPI documents (2.0, 3.0, 3.1; YAML or JSON; a file or a URL) as REST tool definitions, one tool per
// operation. The document is validated and every `$ref` dereferenced by @readme/openapi-parser; a recursive
// schema (whose `$ref` the parser leaves in place) is expanded down to its first repetition, below which
// any value is accepted. Schemas become JSON Schema 2020-12: OpenAPI 3.0's `nullable` (and Swagger's
// `x-nullable`) adds "null" to the type and enum, 3.0's boolean exclusiveMinimum/Maximum become numbers,
// readOnly properties leave request bodies and writeOnly ones leave responses, and an `allOf` of object
// schemas is merged into one object (so a body's fields become arguments). Only JSON request bodies are
// supported: an operation with another body (multipart, form, binary) is skipped with a note. Header
// parameters named Accept, Content-Type or Authorization are ignored, as the specification says (the
// gateway sets them), and so are the other headers the gateway owns; a parameter style the gateway does not
// serialise (matrix, label) falls back to the default. Every such approximation is a note.
//
// Naming: a tool is named after its operationId, or `<method>_<path>` without one, sanitised to MCP's
// 1-128 [A-Za-z0-9_.-] (each run of other characters, with the underscores around it, becomes one `_`).
// Operations with an override are named first (an override's `name` must already be valid, and two
// overrides may not claim one name); any other operation whose name is taken gets `_2`, `_3`…, with a note.
// Operations are chosen by tag, path or operationId globs, and each may be renamed, re-described,
// re-annotated or given an ACL.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { dereference, validate } from '@readme/openapi-parser';
import { parse as parseYaml } from 'yaml';
import { globMatcher } from '../../catalog/filter.ts';
import type { JsonSchema, RestAnnotations, RestParameter, RestToolSpec } from './tools.ts';

export interface OpenApiSelection {
  tags?: readonly string[] | undefined;
  paths?: readonly string[] | undefined;
  operations?: readonly string[] | undefined;
}

export interface OpenApiOverride {
  name?: string | undefined;
  description?: string | undefined;
  annotations?: RestAnnotations | undefined;
  acl?: { allow?: readonly string[] | undefined; deny?: readonly string[] | undefined } | undefined;
}

export interface OpenApiOptions {
  include?: OpenApiSelection | undefined;
  exclude?: OpenApiSelection | undefined;
  /** By operationId (or `METHOD /path` for operations without one). */
  overrides?: Readonly<Record<string, OpenApiOverride>> | undefined;
}

export type GeneratedTool = RestToolSpec & { acl?: OpenApiOverride['acl'] };

export interface GeneratedTools {
  /**
   * The document's first server URL (3.x) or scheme://host/basePath (2.0), when it gives one; relative
   * when the document's is and it was not loaded from a URL to resolve it against.
   */
  baseUrl: string | undefined;
  tools: GeneratedTool[];
  /** What was approximated or left out, in words. */
  notes: string[];
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;
const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** Header parameters the specification says to ignore, and those the gateway sets itself. */
const OWNED_HEADERS = /^(accept|content-type|authorization|cookie|host|content-length|transfer-encoding)$/i;
const STYLES = new Set(['form', 'simple', 'spaceDelimited', 'pipeDelimited', 'deepObject']);
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The largest OpenAPI document read from a URL (the largest public ones are a few MiB). */
export const MAX_DOCUMENT_BYTES = 32 * 1024 * 1024;

/** A response's body as text, refused past MAX_DOCUMENT_BYTES (a server could stream for ever). */
async function readBounded(res: Response, source: string): Promise<string> {
  const tooBig = () =>
    new Error(`the OpenAPI document ${source} is larger than ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB`);
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Where each loaded document came from, to resolve its relative server URL (3.x) or missing host (2.0). */
const documentUrls = new WeakMap<object, string>();

/**
 * A validated, dereferenced document from a file (relative to `baseDir`) or an http(s) URL. Throws an
 * Error whose message names the source and says what is wrong with it.
 */
export async function loadOpenApi(source: string, baseDir: string): Promise<Obj> {
  const isUrl = /^https?:\/\//i.test(source);
  let text: string;
  if (isUrl) {
    let res: Response;
    try {
      res = await fetch(source, { signal: AbortSignal.timeout(10_000), redirect: 'follow' });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
      throw new Error(`cannot fetch the OpenAPI document ${source}: ${why}`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`cannot fetch the OpenAPI document ${source}: HTTP ${res.status}`);
    }
    text = await readBounded(res, source);
  } else {
    const path = resolve(baseDir, source);
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : (code ?? String(err));
      throw new Error(`cannot read the OpenAPI document ${source} (${path}): ${why}`);
    }
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: false });
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`${source} is neither YAML nor JSON: ${why}`);
  }
  if (!isObj(doc) || (!doc.openapi && !doc.swagger))
    throw new Error(`${source} is not an OpenAPI document (no "openapi" or "swagger" field)`);
  const checked = await validate(structuredClone(doc) as never);
  if (!checked.valid) {
    // The parser's message is a headline then a code frame: keep the headline and the marked line.
    const lines = (checked.errors[0]?.message ?? 'invalid').split('\n').map((l) => l.trimEnd());
    const marked = lines.find((l) => /^\s*\|\s*\^/.test(l))?.replace(/^\s*\|\s*\^+\s*/, '');
    const more = checked.errors.length > 1 ? ` (and ${checked.errors.length - 1} more)` : '';
    throw new Error(
      `${source} is not a valid OpenAPI document: ${lines[0]}${marked ? ` (${marked})` : ''}${more}`,
    );
  }
  let out: Obj;
  try {
    out = (await dereference(doc as never, {
      dereference: { circular: 'ignore' },
      resolve: { external: false },
    })) as unknown as Obj;
  } catch (err) {
    throw new Error(`${source}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (isUrl) documentUrls.set(out, source);
  return out;
}

/**
 * Each run of characters outside [A-Za-z0-9_.-], with the underscores around it, becomes one `_`; leading
 * and trailing underscores go. Written without a backtracking regex (`_*[^…]+_*` is quadratic on a long
 * run of underscores, and an operationId is the document's to choose).
 */
export function sanitizeName(raw: string): string {
  const parts = raw.split(/[^A-Za-z0-9_.-]+/);
  let s = parts
    .map((p, i) => {
      let a = 0;
      let b = p.length;
      if (i > 0) while (a < b && p[a] === '_') a++;
      if (i < parts.length - 1) while (b > a && p[b - 1] === '_') b--;
      return p.slice(a, b);
    })
    .join('_');
  let a = 0;
  let b = s.length;
  while (a < b && s[a] === '_') a++;
  while (b > a && s[b - 1] === '_') b--;
  s = s.slice(a, b) || 'operation';
  return s.length <= 128 ? s : s.slice(0, 128);
}

interface SchemaContext {
  root: Obj;
  notes: Set<string>;
  /** OpenAPI 3.0 or Swagger 2.0: boolean exclusiveMinimum/Maximum. */
  legacy: boolean;
  /** `in`: a parameter or request body (readOnly properties left out); `out`: a response (writeOnly). */
  direction: 'in' | 'out';
}

/** Keywords that carry no meaning for validation and that JSON Schema does not have. */
const DROPPED = new Set([
  'nullable',
  'x-nullable',
  'discriminator',
  'xml',
  'externalDocs',
  '$schema',
  '$id',
  '$anchor',
  '$dynamicAnchor',
]);
const SUBSCHEMA = new Set([
  'items',
  'additionalProperties',
  'not',
  'contains',
  'propertyNames',
  'if',
  'then',
  'else',
  'unevaluatedItems',
  'unevaluatedProperties',
]);
const SUBSCHEMA_LIST = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems']);
const SUBSCHEMA_MAP = new Set(['properties', 'patternProperties', 'dependentSchemas', '$defs']);

function pointer(root: Obj, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let at: unknown = root;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (!isObj(at) && !Array.isArray(at)) return undefined;
    at = (at as Obj)[key];
  }
  return at;
}

/** JSON Schema 2020-12 from an OpenAPI schema (see the header comment). */
function toJsonSchema(
  s: unknown,
  ctx: SchemaContext,
  where: string,
  refs: readonly string[] = [],
  seen = new WeakSet<object>(),
): JsonSchema {
  if (s === false) return { not: {} };
  if (!isObj(s)) return {};
  if (typeof s.$ref === 'string') {
    const { $ref: ref, ...siblings } = s as Obj & { $ref: string };
    const target = pointer(ctx.root, ref);
    if (refs.includes(ref)) {
      ctx.notes.add(
        `${where}: ${ref} is recursive; below its first repetition any value is accepted (the API checks it)`,
      );
      return typeof siblings.description === 'string' ? { description: siblings.description } : {};
    }
    if (!isObj(target)) {
      ctx.notes.add(`${where}: $ref ${ref} cannot be resolved; any value is accepted there`);
      return toJsonSchema(siblings, ctx, where, refs, seen);
    }
    return toJsonSchema({ ...target, ...siblings }, ctx, where, [...refs, ref], seen);
  }
  if (seen.has(s)) {
    ctx.notes.add(`${where}: a recursive schema; below its first repetition any value is accepted`);
    return {};
  }
  seen.add(s);
  const sub = (v: unknown) => toJsonSchema(v, ctx, where, refs, seen);
  let out: JsonSchema = {};
  const hidden: string[] = [];
  for (const [k, v] of Object.entries(s)) {
    if (DROPPED.has(k)) continue;
    if (SUBSCHEMA_MAP.has(k) && isObj(v)) {
      const props: Obj = {};
      for (const [p, ps] of Object.entries(v)) {
        const converted = toJsonSchema(ps, ctx, k === 'properties' ? `${where}.${p}` : where, refs, seen);
        // A readOnly property is not sent; a writeOnly one is not returned.
        if (
          k === 'properties' &&
          ((ctx.direction === 'in' && converted.readOnly === true) ||
            (ctx.direction === 'out' && converted.writeOnly === true))
        ) {
          hidden.push(p);
          continue;
        }
        props[p] = converted;
      }
      out[k] = props;
    } else if (SUBSCHEMA.has(k) && (isObj(v) || typeof v === 'boolean')) {
      out[k] = typeof v === 'boolean' ? v : sub(v);
    } else if (SUBSCHEMA_LIST.has(k) && Array.isArray(v)) {
      out[k] = v.map(sub);
    } else out[k] = v;
  }
  if (hidden.length > 0 && Array.isArray(out.required))
    out.required = (out.required as unknown[]).filter((r) => !hidden.includes(String(r)));
  if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  if (ctx.legacy) {
    for (const [flag, bound] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      if (typeof out[flag] !== 'boolean') continue;
      if (out[flag] === true && typeof out[bound] === 'number') {
        out[flag] = out[bound];
        delete out[bound];
      } else delete out[flag];
    }
  }
  out = mergeAllOf(out);
  if (s.nullable === true || s['x-nullable'] === true) out = nullable(out);
  seen.delete(s);
  return out;
}

/** A schema that also accepts null. */
function nullable(s: JsonSchema): JsonSchema {
  if (typeof s.type === 'string' || Array.isArray(s.type)) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const out: JsonSchema = { ...s, type: types.includes('null') ? types : [...types, 'null'] };
    if (Array.isArray(s.enum) && !s.enum.includes(null)) out.enum = [...s.enum, null];
    return out;
  }
  if (!['anyOf', 'oneOf', 'allOf', 'enum', 'const', 'not'].some((k) => k in s)) return s; // any value already
  const { description, title, default: dflt, ...rest } = s;
  return {
    ...(description !== undefined ? { description } : {}),
    ...(title !== undefined ? { title } : {}),
    ...(dflt !== undefined ? { default: dflt } : {}),
    anyOf: [rest, { type: 'null' }],
  };
}

const COMBINATORS = ['allOf', 'anyOf', 'oneOf', 'not', 'enum', 'const', 'items', 'prefixItems', '$ref'];

/**
 * `allOf` of object schemas (their own allOf already merged) as one object: properties united (one defined
 * twice differently must match both), required united; the outer schema's keywords win over the parts'.
 */
function mergeAllOf(s: JsonSchema): JsonSchema {
  const parts = s.allOf;
  if (!Array.isArray(parts) || parts.length === 0) return s;
  const objectLike = (p: unknown): p is JsonSchema =>
    isObj(p) && (p.type === undefined || p.type === 'object') && !COMBINATORS.some((k) => k in p);
  if (!parts.every(objectLike)) return s;
  if (
    s.type !== 'object' &&
    !isObj(s.properties) &&
    !parts.some((p) => p.type === 'object' || isObj(p.properties))
  )
    return s;
  const { allOf: _, type: _type, ...outer } = s;
  const merged: Obj = { type: 'object', ...outer };
  const properties: Obj = isObj(outer.properties) ? { ...outer.properties } : {};
  const required = new Set<string>(Array.isArray(outer.required) ? (outer.required as string[]) : []);
  for (const p of parts) {
    for (const [k, v] of Object.entries(p)) {
      if (k === 'type') continue;
      if (k === 'properties' && isObj(v)) {
        for (const [name, ps] of Object.entries(v)) {
          const prev = properties[name];
          properties[name] =
            prev === undefined || JSON.stringify(prev) === JSON.stringify(ps) ? ps : { allOf: [prev, ps] };
        }
      } else if (k === 'required' && Array.isArray(v)) for (const r of v) required.add(String(r));
      else if (!(k in merged)) merged[k] = v;
    }
  }
  if (Object.keys(properties).length > 0) merged.properties = properties;
  if (required.size > 0) merged.required = [...required];
  else delete merged.required;
  return merged;
}

/** Swagger 2.0 parameters: schema fields on the parameter itself; `in: body` is the request body. */
function swagger2Parameters(
  params: Obj[],
  consumes: readonly string[],
): { parameters: Obj[]; body: Obj | undefined } | string {
  const parameters: Obj[] = [];
  let body: Obj | undefined;
  for (const p of params) {
    if (p.in === 'body') {
      const type = consumes.length === 0 ? 'application/json' : consumes.find((t) => JSON_TYPE.test(t));
      if (!type) return `its body is ${consumes.join(', ')}, not JSON; skipped`;
      body = {
        required: p.required === true,
        ...(typeof p.description === 'string' ? { description: p.description } : {}),
        content: { [type]: { schema: p.schema ?? {} } },
      };
      continue;
    }
    if (p.in === 'formData')
      return `its formData parameter "${String(p.name)}" is a form upload, not JSON; skipped`;
    const { name, in: loc, required, description, collectionFormat, ...schema } = p;
    parameters.push({
      name,
      in: loc,
      required: required === true,
      ...(typeof description === 'string' ? { description } : {}),
      schema,
      ...(collectionFormat === 'multi'
        ? { style: 'form', explode: true }
        : collectionFormat === 'pipes'
          ? { style: 'pipeDelimited', explode: false }
          : collectionFormat === 'ssv'
            ? { style: 'spaceDelimited', explode: false }
            : schema.type === 'array'
              ? { style: loc === 'query' ? 'form' : 'simple', explode: false }
              : {}),
    });
  }
  return { parameters, body };
}

function matches(globs: readonly string[] | undefined, values: readonly string[]): boolean {
  if (!globs || globs.length === 0) return false;
  const matchers = globs.map(globMatcher);
  return values.some((v) => matchers.some((m) => m(v)));
}

function serverUrl(doc: Obj): string | undefined {
  const from = documentUrls.get(doc);
  let url: string | undefined;
  if (typeof doc.swagger === 'string') {
    const schemes = Array.isArray(doc.schemes) ? doc.schemes.map(String) : [];
    const basePath = typeof doc.basePath === 'string' ? doc.basePath : '';
    // Without host (or schemes), the host (or scheme) serving the document.
    const fromUrl = from ? new URL(from) : undefined;
    const host = typeof doc.host === 'string' ? doc.host : fromUrl?.host;
    const scheme = schemes.includes('https')
      ? 'https'
      : schemes.includes('http')
        ? 'http'
        : (fromUrl?.protocol.slice(0, -1) ?? 'https');
    url = host ? `${scheme}://${host}${basePath}` : basePath || undefined;
  } else {
    const server = Array.isArray(doc.servers) ? (doc.servers[0] as Obj | undefined) : undefined;
    if (typeof server?.url === 'string') {
      // Server variables take their defaults.
      const vars = isObj(server.variables) ? server.variables : {};
      url = server.url.replace(/\{([^}]+)\}/g, (_m, v: string) =>
        String((vars[v] as Obj | undefined)?.default ?? ''),
      );
      // A relative server URL is relative to where the document is served.
      if (from && !/^[a-z][a-z0-9+.-]*:/i.test(url)) url = new URL(url, from).href;
    }
  }
  return url?.replace(/\/+$/, '');
}

interface Candidate {
  key: string;
  method: string;
  path: string;
  override: OpenApiOverride | undefined;
  defaultName: string;
  spec: Omit<GeneratedTool, 'name'>;
  name?: string;
}

/** Tool definitions for a dereferenced document (from loadOpenApi). Throws on an unusable override. */
export function toolsFromOpenApi(doc: Obj, opts: OpenApiOptions = {}): GeneratedTools {
  const notes = new Set<string>();
  const swagger2 = typeof doc.swagger === 'string';
  const legacy = swagger2 || /^3\.0\./.test(String(doc.openapi));
  const schema = (s: unknown, where: string, direction: 'in' | 'out') =>
    toJsonSchema(s, { root: doc, notes, legacy, direction }, where);
  const candidates: Candidate[] = [];
  const keys = new Set<string>();
  const paths = isObj(doc.paths) ? doc.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isObj(item)) continue;
    const shared = Array.isArray(item.parameters) ? (item.parameters as Obj[]) : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObj(op)) continue;
      const upper = method.toUpperCase();
      const where = `${upper} ${path}`;
      const key = typeof op.operationId === 'string' ? op.operationId : where;
      keys.add(key);
      const tags = Array.isArray(op.tags) ? op.tags.map(String) : [];
      const include = opts.include;
      const selected =
        !include || (!include.tags?.length && !include.paths?.length && !include.operations?.length)
          ? true
          : matches(include.tags, tags) ||
            matches(include.paths, [path]) ||
            matches(include.operations, [key]);
      const excluded =
        matches(opts.exclude?.tags, tags) ||
        matches(opts.exclude?.paths, [path]) ||
        matches(opts.exclude?.operations, [key]);
      if (!selected || excluded) continue;
      const label = key === where ? where : `${where} (${key})`;
      if (op.deprecated === true) notes.add(`${label}: deprecated by the API; kept`);
      if (
        (Array.isArray(op.servers) && op.servers.length > 0) ||
        (Array.isArray(item.servers) && item.servers.length > 0)
      )
        notes.add(`${label}: has servers of its own; it is called under the upstream's base URL`);
      // Operation parameters override path-level ones of the same name and location.
      const all = [...shared, ...((Array.isArray(op.parameters) ? op.parameters : []) as Obj[])];
      let params = [
        ...new Map(all.filter(isObj).map((p) => [`${String(p.in)}:${String(p.name)}`, p])).values(),
      ];
      let requestBody: Obj | undefined;
      if (swagger2) {
        const consumes = Array.isArray(op.consumes) ? op.consumes : doc.consumes;
        const converted = swagger2Parameters(params, Array.isArray(consumes) ? consumes.map(String) : []);
        if (typeof converted === 'string') {
          notes.add(`${label}: ${converted}`);
          continue;
        }
        params = converted.parameters;
        requestBody = converted.body;
      } else requestBody = isObj(op.requestBody) ? op.requestBody : undefined;
      const parameters: RestParameter[] = [];
      for (const p of params) {
        const name = String(p.name);
        if (p.in === 'header' && OWNED_HEADERS.test(name)) {
          notes.add(`${label}: header parameter "${name}" is ignored (the gateway sets it)`);
          continue;
        }
        let s: unknown = p.schema;
        if (!isObj(s) && isObj(p.content)) {
          // A parameter given by media type: sent as the text the caller gives.
          const type = Object.keys(p.content)[0] ?? 'text/plain';
          s = { type: 'string', contentMediaType: type };
          notes.add(`${label}: parameter "${name}" is ${type}; the caller gives it as text`);
        }
        parameters.push({
          name,
          in: p.in as RestParameter['in'],
          ...(p.required === true ? { required: true } : {}),
          ...(typeof p.description === 'string' ? { description: p.description } : {}),
          ...(isObj(s) ? { schema: schema(s, `${where} parameter ${name}`, 'in') } : {}),
          ...(typeof p.style === 'string' && STYLES.has(p.style) ? { style: p.style } : {}),
          ...(typeof p.explode === 'boolean' ? { explode: p.explode } : {}),
        });
        if (typeof p.style === 'string' && !STYLES.has(p.style))
          notes.add(
            `${label}: parameter "${name}" has style ${p.style}, which is not supported; sent as the default style`,
          );
      }
      if (requestBody) {
        const content = isObj(requestBody.content) ? requestBody.content : {};
        const json = Object.entries(content).find(([t]) => JSON_TYPE.test(t) || t === '*/*');
        if (!json) {
          notes.add(
            `${label}: its request body is ${Object.keys(content).join(', ') || 'of no type'}, not JSON; skipped`,
          );
          continue;
        }
        const media = isObj(json[1]) ? json[1] : {};
        requestBody = {
          ...(requestBody.required === true ? { required: true } : {}),
          ...(typeof requestBody.description === 'string' ? { description: requestBody.description } : {}),
          // The document's JSON media type is kept: it is the request's Content-Type.
          content: {
            [json[0] === '*/*' ? 'application/json' : json[0]]: {
              schema: schema(media.schema, `${where} body`, 'in'),
            },
          },
        };
      }
      const responses: Obj = {};
      for (const [code, r] of Object.entries(isObj(op.responses) ? op.responses : {})) {
        if (!/^2/.test(code) || !isObj(r)) continue;
        const s = swagger2
          ? r.schema
          : (
              Object.entries(isObj(r.content) ? r.content : {}).find(([t]) => JSON_TYPE.test(t))?.[1] as
                | Obj
                | undefined
            )?.schema;
        if (isObj(s) && s.type !== 'file')
          responses[code] = {
            content: { 'application/json': { schema: schema(s, `${where} response`, 'out') } },
          };
      }
      const summary = typeof op.summary === 'string' ? op.summary : undefined;
      const override = opts.overrides?.[key];
      const description =
        override?.description ??
        ([
          summary,
          typeof op.description === 'string' ? op.description : undefined,
          op.deprecated === true ? 'Deprecated.' : undefined,
        ]
          .filter(Boolean)
          .join('\n\n') ||
          undefined);
      candidates.push({
        key,
        method: upper,
        path,
        override,
        defaultName: sanitizeName(typeof op.operationId === 'string' ? op.operationId : `${method}_${path}`),
        spec: {
          method: upper,
          path,
          ...(description ? { description } : {}),
          parameters,
          ...(requestBody ? { request_body: requestBody } : {}),
          ...(Object.keys(responses).length > 0 ? { responses } : {}),
          annotations: { ...(summary ? { title: summary } : {}), ...override?.annotations },
          ...(override?.acl ? { acl: override.acl } : {}),
        },
      });
    }
  }

  // Names: operations with an override first (their ACL is keyed by that name), then the others.
  const taken = new Map<string, string>();
  for (const c of candidates.filter((x) => x.override)) {
    const name = c.override?.name ?? c.defaultName;
    if (!NAME_RE.test(name))
      throw new Error(
        `overrides."${c.key}".name: "${name}" is not a tool name (1-128 characters of A-Z a-z 0-9 _ . -)`,
      );
    const other = taken.get(name);
    if (other !== undefined)
      throw new Error(
        `overrides: operations "${other}" and "${c.key}" would both be the tool "${name}"; give one of them another name`,
      );
    taken.set(name, c.key);
    c.name = name;
  }
  for (const c of candidates.filter((x) => !x.override)) {
    let name = c.defaultName;
    for (let i = 2; taken.has(name); i++) name = `${c.defaultName.slice(0, 127 - String(i).length)}_${i}`;
    if (name !== c.defaultName)
      notes.add(
        `${c.key}: named "${name}" (operation "${taken.get(c.defaultName)}" is "${c.defaultName}"); an override can rename it`,
      );
    taken.set(name, c.key);
    c.name = name;
  }

  for (const k of Object.keys(opts.overrides ?? {}))
    if (!keys.has(k))
      notes.add(`overrides."${k}": the document has no operation with this operationId (or METHOD /path)`);
  return {
    baseUrl: serverUrl(doc),
    tools: candidates.map((c) => ({ name: c.name!, ...c.spec })),
    notes: [...notes],
  };
}
