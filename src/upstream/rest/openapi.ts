// OpenAPI documents (2.0, 3.0, 3.1; a file or a URL) as REST tool definitions: one tool per operation,
// named from its operationId (sanitised to MCP's 1-128 [A-Za-z0-9_.-]), every `$ref` dereferenced by
// @readme/openapi-parser, `allOf` object bodies merged so their fields become arguments, OpenAPI 3.0's
// `nullable` turned into JSON Schema. Operations are chosen by tag, path or operationId globs, and each
// may be renamed, re-described, re-annotated or given an ACL.

import { readFile } from 'node:fs/promises';
import { dereference, validate } from '@readme/openapi-parser';
import { globToRegExp } from '../../catalog/filter.ts';
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

export interface GeneratedTools {
  /** The document's first server URL (3.x) or scheme://host/basePath (2.0), when it gives one. */
  baseUrl: string | undefined;
  tools: (RestToolSpec & { acl?: OpenApiOverride['acl'] })[];
  /** What was approximated or left out, in words. */
  notes: string[];
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A document from a file (relative to `baseDir`) or an http(s) URL. */
export async function loadOpenApi(source: string, baseDir: string): Promise<Obj> {
  let text: string;
  if (/^https?:\/\//.test(source)) {
    const res = await fetch(source, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`cannot fetch ${source}: HTTP ${res.status}`);
    text = await res.text();
  } else {
    const { resolve } = await import('node:path');
    text = await readFile(resolve(baseDir, source), 'utf8');
  }
  const { parse } = await import('yaml');
  const doc: unknown = parse(text);
  if (!isObj(doc) || (!doc.openapi && !doc.swagger))
    throw new Error(`${source} is not an OpenAPI document (no "openapi" or "swagger" field)`);
  const checked = await validate(structuredClone(doc) as never);
  if (!checked.valid) {
    const first = checked.errors[0];
    throw new Error(`${source} is not a valid OpenAPI document: ${first?.message ?? 'invalid'}`);
  }
  return (await dereference(doc as never, { dereference: { circular: 'ignore' } })) as unknown as Obj;
}

export function sanitizeName(raw: string): string {
  const s = raw.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '') || 'operation';
  return s.length <= 128 ? s : s.slice(0, 128);
}

/** JSON Schema from an OpenAPI schema: `nullable` (3.0) as a null type, leftover circular `$ref`s as any. */
function toJsonSchema(s: unknown, notes: string[], where: string, seen = new WeakSet<object>()): JsonSchema {
  if (!isObj(s)) return {};
  if (seen.has(s)) {
    notes.push(`${where}: a recursive schema is accepted as any value below its first repetition`);
    return {};
  }
  seen.add(s);
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === '$ref') {
      notes.push(`${where}: an unresolved $ref (${String(v)}) is accepted as any value`);
      continue;
    }
    if (k === 'nullable' || k === 'discriminator' || k === 'xml' || k === 'externalDocs') continue;
    if (k === 'properties' && isObj(v)) {
      out.properties = Object.fromEntries(
        Object.entries(v).map(([p, ps]) => [p, toJsonSchema(ps, notes, `${where}.${p}`, seen)]),
      );
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && isObj(v)) {
      out[k] = toJsonSchema(v, notes, where, seen);
    } else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((x) => toJsonSchema(x, notes, where, seen));
    } else out[k] = v;
  }
  if (s.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  seen.delete(s);
  return mergeAllOf(out);
}

/** `allOf` of object schemas merged into one object (so a body's fields can become arguments). */
function mergeAllOf(s: JsonSchema): JsonSchema {
  const parts = s.allOf;
  if (!Array.isArray(parts) || parts.length === 0) return s;
  if (!parts.every((p: JsonSchema) => p.type === 'object' || isObj(p.properties))) return s;
  const { allOf: _, ...rest } = s;
  const properties: Obj = { ...(isObj(rest.properties) ? rest.properties : {}) };
  const required = new Set<string>(Array.isArray(rest.required) ? rest.required : []);
  for (const p of parts as JsonSchema[]) {
    Object.assign(properties, isObj(p.properties) ? p.properties : {});
    for (const r of Array.isArray(p.required) ? p.required : []) required.add(r);
  }
  return {
    ...rest,
    type: 'object',
    properties,
    ...(required.size > 0 ? { required: [...required] } : {}),
  };
}

/** Swagger 2.0 parameters: schema fields on the parameter itself; `in: body` is the request body. */
function swagger2Parameters(params: Obj[], notes: string[], where: string) {
  const parameters: RestParameter[] = [];
  let body: Obj | undefined;
  for (const p of params) {
    if (p.in === 'body') {
      body = {
        required: p.required === true,
        ...(typeof p.description === 'string' ? { description: p.description } : {}),
        content: { 'application/json': { schema: p.schema ?? {} } },
      };
      continue;
    }
    if (p.in === 'formData') {
      notes.push(
        `${where}: formData parameter "${String(p.name)}" is not supported; the operation is skipped`,
      );
      return undefined;
    }
    const { name, in: loc, required, description, collectionFormat, ...schema } = p;
    parameters.push({
      name: String(name),
      in: loc as RestParameter['in'],
      required: required === true,
      ...(typeof description === 'string' ? { description } : {}),
      schema,
      ...(collectionFormat === 'multi'
        ? { style: 'form', explode: true }
        : collectionFormat === 'pipes'
          ? { style: 'pipeDelimited', explode: false }
          : collectionFormat === 'ssv'
            ? { style: 'spaceDelimited', explode: false }
            : Array.isArray(schema.items) || schema.type === 'array'
              ? { style: 'form', explode: false }
              : {}),
    });
  }
  return { parameters, body };
}

function matches(globs: readonly string[] | undefined, values: readonly string[]): boolean {
  if (!globs || globs.length === 0) return false;
  const res = globs.map(globToRegExp);
  return values.some((v) => res.some((r) => r.test(v)));
}

/** Tool definitions for a dereferenced document. */
export function toolsFromOpenApi(doc: Obj, opts: OpenApiOptions = {}): GeneratedTools {
  const notes: string[] = [];
  const swagger2 = typeof doc.swagger === 'string';
  let baseUrl: string | undefined;
  if (swagger2) {
    const scheme = Array.isArray(doc.schemes) && doc.schemes.includes('https') ? 'https' : 'http';
    if (typeof doc.host === 'string')
      baseUrl = `${scheme}://${doc.host}${typeof doc.basePath === 'string' ? doc.basePath : ''}`;
  } else {
    const server = Array.isArray(doc.servers) ? (doc.servers[0] as Obj | undefined) : undefined;
    if (typeof server?.url === 'string') {
      // Server variables take their defaults.
      const vars = isObj(server.variables) ? server.variables : {};
      baseUrl = server.url.replace(/\{([^}]+)\}/g, (_m, v: string) =>
        String((vars[v] as Obj | undefined)?.default ?? ''),
      );
    }
  }
  if (baseUrl !== undefined) baseUrl = baseUrl.replace(/\/+$/, '');

  const tools: GeneratedTools['tools'] = [];
  const names = new Set<string>();
  const seenKeys = new Set<string>();
  const paths = isObj(doc.paths) ? doc.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isObj(item)) continue;
    const shared = Array.isArray(item.parameters) ? (item.parameters as Obj[]) : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObj(op)) continue;
      const upper = method.toUpperCase();
      const key = typeof op.operationId === 'string' ? op.operationId : `${upper} ${path}`;
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
      if (op.deprecated === true) notes.push(`${key}: deprecated, kept`);
      const where = `${upper} ${path}`;
      // Operation parameters override path-level ones of the same name and location.
      const all = [...shared, ...((Array.isArray(op.parameters) ? op.parameters : []) as Obj[])];
      const byKey = new Map(all.filter(isObj).map((p) => [`${String(p.in)}:${String(p.name)}`, p]));
      let parameters: RestParameter[];
      let requestBody: Obj | undefined;
      if (swagger2) {
        const converted = swagger2Parameters([...byKey.values()], notes, where);
        if (!converted) continue;
        parameters = converted.parameters;
        requestBody = converted.body;
      } else {
        parameters = [...byKey.values()].map((p) => ({
          name: String(p.name),
          in: p.in as RestParameter['in'],
          ...(p.required === true ? { required: true } : {}),
          ...(typeof p.description === 'string' ? { description: p.description } : {}),
          ...(isObj(p.schema) ? { schema: p.schema } : {}),
          ...(typeof p.style === 'string' ? { style: p.style } : {}),
          ...(typeof p.explode === 'boolean' ? { explode: p.explode } : {}),
        }));
        requestBody = isObj(op.requestBody) ? op.requestBody : undefined;
      }
      parameters = parameters.map((p) => ({
        ...p,
        ...(p.schema ? { schema: toJsonSchema(p.schema, notes, `${where} parameter ${p.name}`) } : {}),
      }));
      if (requestBody) {
        const content = isObj(requestBody.content) ? requestBody.content : {};
        const json = Object.entries(content).find(
          ([t]) => /^application\/([\w.+-]+\+)?json\b/i.test(t) || t === '*/*',
        );
        if (!json) {
          notes.push(
            `${key}: only JSON request bodies are supported (${Object.keys(content).join(', ') || 'none'}); skipped`,
          );
          continue;
        }
        const media = isObj(json[1]) ? json[1] : {};
        requestBody = {
          ...(requestBody.required === true ? { required: true } : {}),
          ...(typeof requestBody.description === 'string' ? { description: requestBody.description } : {}),
          content: { 'application/json': { schema: toJsonSchema(media.schema, notes, `${where} body`) } },
        };
      }
      const responses: Obj = {};
      for (const [code, r] of Object.entries(isObj(op.responses) ? op.responses : {})) {
        if (!/^2/.test(code) || !isObj(r)) continue;
        const schema = swagger2
          ? r.schema
          : Object.entries(isObj(r.content) ? r.content : {}).find(([t]) => /json/i.test(t))?.[1];
        const s = swagger2 ? schema : isObj(schema) ? schema.schema : undefined;
        if (isObj(s))
          responses[code] = {
            content: { 'application/json': { schema: toJsonSchema(s, notes, `${where} response`) } },
          };
      }
      const override = opts.overrides?.[key];
      seenKeys.add(key);
      let name = sanitizeName(
        override?.name ?? (typeof op.operationId === 'string' ? op.operationId : `${method}_${path}`),
      );
      for (let i = 2; names.has(name); i++) name = sanitizeName(`${name.slice(0, 120)}_${i}`);
      names.add(name);
      const summary = typeof op.summary === 'string' ? op.summary : undefined;
      const description =
        override?.description ??
        ([summary, typeof op.description === 'string' ? op.description : undefined]
          .filter(Boolean)
          .join('\n\n') ||
          undefined);
      tools.push({
        name,
        method: upper,
        path,
        ...(description ? { description } : {}),
        parameters,
        ...(requestBody ? { request_body: requestBody } : {}),
        ...(Object.keys(responses).length > 0 ? { responses } : {}),
        annotations: { ...(summary ? { title: summary } : {}), ...override?.annotations },
        ...(override?.acl ? { acl: override.acl } : {}),
      });
    }
  }
  for (const k of Object.keys(opts.overrides ?? {}))
    if (!seenKeys.has(k)) notes.push(`overrides.${k}: no operation of the document has this operationId`);
  return { baseUrl, tools, notes };
}
