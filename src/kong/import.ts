// Kong decK → Gatehouse config. Reads a decK file's services, routes and plugins and maps Kong's MCP
// plugins to their Gatehouse equivalent:
//
//   ai-mcp-proxy conversion-only       → a `rest` upstream (tools kept with Kong's names), served by the
//                                        listener(s) whose server.tag is among the plugin entity's tags
//   ai-mcp-proxy listener              → a route at the Kong route's path, over those upstreams
//   ai-mcp-proxy conversion-listener   → a `rest` upstream and its own route
//   ai-mcp-proxy passthrough-listener  → a `streamable-http` upstream (the service) and its own route
//   ai-mcp-oauth2                      → the route's `auth.oauth` (resource, issuer, introspection, claims)
//
// Tool paths are Kong proxy paths: they are made relative to the service by undoing the route's prefix
// (strip_path, Kong's default) so the REST upstream calls the service directly. `${{ env "DECK_X" }}` is
// resolved from the environment (left as `${DECK_X}` for Gatehouse to interpolate when unset). Everything
// that cannot be mapped is reported, never dropped silently.

import { parse as parseYaml } from 'yaml';

export interface ImportReport {
  /** Field-level notes: what was mapped approximately, what was not mapped at all, and why. */
  warnings: string[];
  /** Problems that make the output unusable. */
  errors: string[];
}

export interface ImportResult {
  config: Record<string, unknown>;
  report: ImportReport;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Upstream and route names: Gatehouse's NAME rule. */
function safeName(s: string, taken: Set<string>): string {
  let base = s.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'upstream';
  base = base.slice(0, 60);
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

interface KongPlugin {
  name: string;
  config: Obj;
  tags: string[];
  enabled: boolean;
  where: string;
  service: Obj | undefined;
  route: Obj | undefined;
}

const DECK_ENV = /\$\{\{\s*env\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\}\}/g;

/** Fields whose value is a secret: an env substitution there is kept as `{ env: NAME }`, never its value. */
const SECRET_FIELDS = new Set(['client_secret']);

/**
 * `${{ env "DECK_X" }}` substitutions, resolved like decK does (in the text, so that one may stand inside a
 * flow sequence), then every string value made literal for Gatehouse, whose config interpolates `${VAR}`:
 * a `$` of the decK file (a tool description, a header, a resolved value) is written `$$`, else importing
 * a file could make the gateway read its own environment (`${DB_PASSWORD}`) into a description every
 * client lists. Unset variables are kept as `${DECK_X}` for Gatehouse to read at start; a secret field
 * that is one substitution becomes `{ env: DECK_X }` (the secret is not written into the output file).
 */
function parseDeck(text: string, env: NodeJS.ProcessEnv, report: ImportReport): unknown {
  // Placeholders first (letters and digits: YAML reads them the same anywhere), values after parsing.
  let tag = 'GHDECKENV';
  while (text.includes(tag)) tag += 'Q';
  const names: string[] = [];
  const marked = text.replace(DECK_ENV, (_m, name: string) => `${tag}X${names.push(name) - 1}X`);
  const doc: unknown = parseYaml(marked);
  const placeholder = new RegExp(`${tag}X(\\d+)X`, 'g');
  const whole = new RegExp(`^${tag}X(\\d+)X$`);
  const unset = new Set<string>();
  const literal = (s: string) => s.replaceAll('$', '$$$$');
  const value = (s: string, key: string | undefined): unknown => {
    const only = whole.exec(s);
    if (only) {
      const name = names[Number(only[1])]!;
      if (key !== undefined && SECRET_FIELDS.has(key)) {
        report.warnings.push(
          `${key}: ${'${{'} env "${name}" }} → { env: ${name} } (the secret is read from the environment at start, not written into the file)`,
        );
        return { env: name };
      }
      const v = env[name];
      if (v === undefined) unset.add(name);
      // Written in place, decK's way: an unquoted number or boolean stays one.
      else if (/^(-?\d+(\.\d+)?|true|false)$/.test(v)) return parseYaml(v) as unknown;
      return v === undefined ? `\${${name}}` : literal(v);
    }
    let out = '';
    let last = 0;
    for (const m of s.matchAll(placeholder)) {
      const name = names[Number(m[1])]!;
      const v = env[name];
      if (v === undefined) unset.add(name);
      out += literal(s.slice(last, m.index)) + (v === undefined ? `\${${name}}` : literal(v));
      last = m.index + m[0].length;
    }
    return out + literal(s.slice(last));
  };
  const walk = (v: unknown, key: string | undefined): unknown => {
    if (typeof v === 'string') return value(v, key);
    if (Array.isArray(v)) return v.map((x) => walk(x, key));
    if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  const out = walk(doc, undefined);
  for (const name of unset)
    report.warnings.push(
      `${name} is not set: kept as \${${name}}, which Gatehouse reads from its environment at start`,
    );
  return out;
}

/** A secret value: `{vault://env/name}` becomes { env: NAME }; other vault references are reported. */
function secretOf(v: unknown, where: string, report: ImportReport): unknown {
  // A literal secret had its `$` doubled for Gatehouse's interpolation (parseDeck); a vault reference has none.
  const s = str(v);
  if (s === undefined) return v;
  const vault = /^\{vault:\/\/([^/}]+)\/([^}]+)\}$/.exec(s);
  if (!vault) return s;
  if (vault[1] === 'env') {
    const name = vault[2]!.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
    report.warnings.push(`${where}: ${s} → { env: ${name} } (Kong's env vault reads the same variable)`);
    return { env: name };
  }
  report.warnings.push(
    `${where}: ${s} is a ${vault[1]} vault reference, which Gatehouse cannot read: set the secret as { env: … } or { file: … }`,
  );
  return { env: `KONG_VAULT_${vault[2]!.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}` };
}

/** The service's base URL (url, or protocol/host/port/path). */
function serviceUrl(service: Obj): string | undefined {
  const url = str(service.url);
  if (url) return url.replace(/\/+$/, '');
  const host = str(service.host);
  if (!host) return undefined;
  const protocol = str(service.protocol) ?? 'http';
  const port = service.port ?? (protocol === 'https' ? 443 : 80);
  return `${protocol}://${host}:${String(port)}${str(service.path) ?? ''}`.replace(/\/+$/, '');
}

/** The route's first path prefix (regex paths, starting with ~, cannot be undone). */
function routePrefix(route: Obj | undefined): string | undefined {
  const p = str(arr(route?.paths)[0]);
  return p?.startsWith('~') ? undefined : p;
}

/** Every plugin with the service and route it applies to (nested or top-level with references). */
function collectPlugins(deck: Obj, report: ImportReport): KongPlugin[] {
  const services = arr(deck.services).filter(isObj);
  const byName = (list: Obj[], ref: unknown) => {
    const key = isObj(ref) ? (str(ref.name) ?? str(ref.id)) : str(ref);
    return key === undefined ? undefined : list.find((x) => x.name === key || x.id === key);
  };
  const routes: { route: Obj; service: Obj | undefined }[] = [];
  for (const s of services)
    for (const r of arr(s.routes).filter(isObj)) routes.push({ route: r, service: s });
  for (const r of arr(deck.routes).filter(isObj))
    routes.push({ route: r, service: byName(services, r.service) });
  const out: KongPlugin[] = [];
  const add = (p: Obj, service: Obj | undefined, route: Obj | undefined, where: string) => {
    out.push({
      name: str(p.name) ?? '',
      config: isObj(p.config) ? p.config : {},
      tags: arr(p.tags).filter((t): t is string => typeof t === 'string'),
      enabled: p.enabled !== false,
      where,
      service,
      route,
    });
  };
  for (const s of services) {
    for (const p of arr(s.plugins).filter(isObj))
      add(p, s, undefined, `services.${String(s.name)}.plugins.${String(p.name)}`);
  }
  for (const { route, service } of routes) {
    for (const p of arr(route.plugins).filter(isObj))
      add(p, service, route, `routes.${String(route.name ?? routePrefix(route))}.plugins.${String(p.name)}`);
  }
  for (const p of arr(deck.plugins).filter(isObj)) {
    const route =
      p.route === undefined
        ? undefined
        : routes.find(
            (r) =>
              r.route ===
              byName(
                routes.map((x) => x.route),
                p.route,
              ),
          );
    const service = route?.service ?? (p.service === undefined ? undefined : byName(services, p.service));
    if (p.route !== undefined && !route)
      report.errors.push(`plugins.${String(p.name)}: unknown route ${JSON.stringify(p.route)}`);
    add(p, service, route?.route, `plugins.${String(p.name)}`);
  }
  return out;
}

const TOOL_FIELDS = new Set([
  'name',
  'description',
  'method',
  'path',
  'parameters',
  'request_body',
  'responses',
  'annotations',
  'acl',
]);

/** Kong tool definitions as Gatehouse REST tools, paths made relative to the service. */
function convertTools(p: KongPlugin, report: ImportReport): Obj[] {
  const prefix = routePrefix(p.route);
  const strip = p.route?.strip_path !== false;
  if (p.route && prefix === undefined)
    report.warnings.push(`${p.where}: the route's path is a regex; tool paths are used as they are`);
  const names = new Set<string>();
  return arr(p.config.tools)
    .filter(isObj)
    .map((t, i) => {
      const where = `${p.where}.config.tools[${i}]`;
      for (const k of Object.keys(t)) {
        if (!TOOL_FIELDS.has(k) && t[k] !== null && t[k] !== undefined)
          report.warnings.push(`${where}.${k} is not mapped (Gatehouse tools call the service's base URL)`);
      }
      const method = (str(t.method) ?? 'GET').toUpperCase();
      let path = str(t.path) ?? '/';
      if (
        strip &&
        prefix &&
        prefix !== '/' &&
        (path === prefix || path.startsWith(`${prefix.replace(/\/$/, '')}/`))
      )
        path = path.slice(prefix.replace(/\/$/, '').length) || '/';
      let name = str(t.name);
      if (!name) {
        name =
          `${method.toLowerCase()}${path.replace(/\{([^}]+)\}/g, '$1').replace(/[^A-Za-z0-9]+/g, '_')}`.replace(
            /_+$/,
            '',
          );
        report.warnings.push(`${where} has no name: named "${name}" (from its method and path)`);
      }
      if (names.has(name)) report.errors.push(`${where}: duplicate tool name "${name}"`);
      names.add(name);
      const out: Obj = { name, method, path };
      for (const k of ['description', 'parameters', 'request_body', 'responses', 'annotations'] as const)
        if (t[k] !== undefined && t[k] !== null) out[k] = t[k];
      const acl = aclOf(t.acl);
      if (acl) out.acl = acl;
      return out;
    });
}

/** A Kong ACL ({allow, deny}) as a Gatehouse rule. */
function aclOf(v: unknown): Obj | undefined {
  if (!isObj(v)) return undefined;
  const out: Obj = {};
  if (Array.isArray(v.allow)) out.allow = v.allow;
  if (Array.isArray(v.deny)) out.deny = v.deny;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A listener's default_acl (a list of { scope, allow, deny }) as the route's default rule. */
function defaultAcl(p: KongPlugin, report: ImportReport): Obj | undefined {
  const list = arr(p.config.default_acl).filter(isObj);
  let out: Obj | undefined;
  for (const [i, entry] of list.entries()) {
    const scope = str(entry.scope) ?? 'tools';
    if (scope !== 'tools') {
      report.warnings.push(`${p.where}.config.default_acl[${i}]: scope ${scope} is not mapped (only tools)`);
      continue;
    }
    out = aclOf(entry);
  }
  return out;
}

const OAUTH_MAPPED = new Set([
  'resource',
  'authorization_servers',
  'introspection_endpoint',
  'client_id',
  'client_secret',
  'insecure_relaxed_audience_validation',
  'consumer_claim',
  'consumer_groups_claim',
  'scopes_supported',
  'cache_introspection',
]);

function oauthOf(p: KongPlugin, report: ImportReport): Obj | undefined {
  const c = p.config;
  const servers = arr(c.authorization_servers).filter((s): s is string => typeof s === 'string');
  if (servers.length === 0) {
    report.errors.push(`${p.where}: no authorization_servers; the route cannot be protected`);
    return undefined;
  }
  if (servers.length > 1)
    report.warnings.push(
      `${p.where}: several authorization_servers; Gatehouse trusts one issuer per route: ${servers[0]}`,
    );
  const oauth: Obj = { issuer: servers[0] };
  if (str(c.resource)) oauth.audience = c.resource;
  if (c.insecure_relaxed_audience_validation === true) oauth.relaxed_audience = true;
  const claimPath = (v: unknown) =>
    arr(v)
      .filter((x): x is string => typeof x === 'string')
      .join('.');
  if (arr(c.consumer_claim).length > 0) oauth.subject_claim = claimPath(c.consumer_claim);
  if (arr(c.consumer_groups_claim).length > 0) oauth.groups_claim = claimPath(c.consumer_groups_claim);
  if (Array.isArray(c.scopes_supported)) oauth.scopes = c.scopes_supported;
  if (str(c.introspection_endpoint) || str(c.client_id)) {
    if (!str(c.client_id) || c.client_secret === undefined) {
      report.errors.push(`${p.where}: introspection needs client_id and client_secret`);
    } else {
      oauth.introspection = {
        ...(str(c.introspection_endpoint) ? { endpoint: c.introspection_endpoint } : {}),
        client_id: c.client_id,
        client_secret: secretOf(c.client_secret, `${p.where}.config.client_secret`, report),
        // Kong introspects every token; so does the imported route.
        tokens: 'all',
        ...(c.cache_introspection === false ? { cache_ttl: 0 } : {}),
      };
    }
  }
  for (const [k, v] of Object.entries(c)) {
    if (OAUTH_MAPPED.has(k) || v === null || v === undefined || (Array.isArray(v) && v.length === 0))
      continue;
    if (k === 'claim_to_header')
      report.warnings.push(
        `${p.where}.config.claim_to_header is not mapped: give the upstreams an identity assertion (upstreams.<name>.auth.assertion), which they can verify, instead of plain headers`,
      );
    else if (
      k === 'consumer_optional' ||
      k === 'consumer_groups_optional' ||
      k === 'consumer_by' ||
      k === 'credential_claim'
    )
      report.warnings.push(
        `${p.where}.config.${k} is not mapped: Gatehouse has no consumers; the token's claims are the caller`,
      );
    else report.warnings.push(`${p.where}.config.${k} is not mapped`);
  }
  return oauth;
}

const PROXY_MAPPED = new Set([
  'mode',
  'tools',
  'server',
  'default_acl',
  'include_consumer_groups',
  'max_request_body_size',
]);

export function importKong(text: string, env: NodeJS.ProcessEnv = process.env): ImportResult {
  const report: ImportReport = { warnings: [], errors: [] };
  let deck: unknown;
  try {
    deck = parseDeck(text, env, report);
  } catch (err) {
    report.errors.push(`not YAML: ${err instanceof Error ? err.message : String(err)}`);
    return { config: {}, report };
  }
  if (!isObj(deck)) {
    report.errors.push('not a decK file (expected a mapping with services, routes, plugins)');
    return { config: {}, report };
  }
  const plugins = collectPlugins(deck, report).filter((p) => {
    if (!p.enabled) report.warnings.push(`${p.where} is disabled: skipped`);
    return p.enabled;
  });
  const upstreams: Obj = {};
  const routes: Obj[] = [];
  const upstreamNames = new Set<string>();
  const taggedUpstreams: { name: string; tags: string[] }[] = [];
  let maxBody = 0;

  // Kong's precedence: a plugin on the route, else on its service, else a global one (neither).
  const oauthPlugins = plugins.filter((x) => x.name === 'ai-mcp-oauth2');
  const oauthFor = (route: Obj | undefined, service: Obj | undefined) => {
    const p =
      (route && oauthPlugins.find((x) => x.route === route)) ??
      (service && oauthPlugins.find((x) => !x.route && x.service === service)) ??
      oauthPlugins.find((x) => !x.route && !x.service);
    return p ? oauthOf(p, report) : undefined;
  };
  const restUpstream = (p: KongPlugin): string | undefined => {
    const base = p.service ? serviceUrl(p.service) : undefined;
    if (!base) {
      report.errors.push(`${p.where}: the plugin's service has no url/host; its tools cannot be called`);
      return undefined;
    }
    const name = safeName(str(p.service?.name) ?? 'service', upstreamNames);
    const server = isObj(p.config.server) ? p.config.server : {};
    upstreams[name] = {
      type: 'rest',
      base_url: base,
      ...(typeof server.timeout === 'number' ? { request_timeout: server.timeout } : {}),
      tools: convertTools(p, report),
    };
    return name;
  };
  const addRoute = (p: KongPlugin, names: string[], acl: Obj | undefined) => {
    const path = routePrefix(p.route);
    if (!path) {
      report.errors.push(`${p.where}: the plugin's route has no plain path; the MCP endpoint needs one`);
      return;
    }
    const route: Obj = {
      path: path.replace(/\/+$/, '') || '/',
      upstreams: names,
      tools: { prefix: 'never' },
    };
    const oauth = oauthFor(p.route, p.service);
    if (oauth) route.auth = { oauth };
    else
      report.warnings.push(`${p.where}: no ai-mcp-oauth2 on this route: it is served without authentication`);
    if (acl) route.acl = { default: acl };
    routes.push(route);
  };
  const checkProxyFields = (p: KongPlugin) => {
    for (const [k, v] of Object.entries(p.config)) {
      if (PROXY_MAPPED.has(k) || v === null || v === undefined) continue;
      if (k === 'logging')
        report.warnings.push(
          `${p.where}.config.logging is not mapped: Gatehouse audits every call (see docs)`,
        );
      else report.warnings.push(`${p.where}.config.${k} is not mapped`);
    }
    if (typeof p.config.max_request_body_size === 'number')
      maxBody = Math.max(maxBody, p.config.max_request_body_size);
    const server = isObj(p.config.server) ? p.config.server : {};
    for (const k of Object.keys(server))
      if (k !== 'tag' && k !== 'timeout') report.warnings.push(`${p.where}.config.server.${k} is not mapped`);
  };

  const proxies = plugins.filter((p) => p.name === 'ai-mcp-proxy');
  for (const p of proxies) {
    checkProxyFields(p);
    const mode = str(p.config.mode) ?? 'passthrough-listener';
    if (mode === 'conversion-only') {
      const name = restUpstream(p);
      if (name) taggedUpstreams.push({ name, tags: p.tags });
      if (arr(p.config.default_acl).length > 0)
        report.warnings.push(
          `${p.where}.config.default_acl is IGNORED by Kong's listener for conversion-only plugins, and not imported: put the default ACL on the listener (here: the route's acl.default). Kong applies only the listener's default_acl to these tools.`,
        );
    } else if (mode === 'conversion-listener') {
      const name = restUpstream(p);
      if (name) addRoute(p, [name], defaultAcl(p, report));
    } else if (mode === 'passthrough-listener') {
      const base = p.service ? serviceUrl(p.service) : undefined;
      if (!base) {
        report.errors.push(`${p.where}: the plugin's service has no url/host`);
        continue;
      }
      const name = safeName(str(p.service?.name) ?? 'mcp', upstreamNames);
      upstreams[name] = { type: 'streamable-http', url: base };
      addRoute(p, [name], defaultAcl(p, report));
    } else if (mode !== 'listener') {
      report.errors.push(`${p.where}: unknown mode ${mode}`);
    }
  }
  for (const p of proxies.filter((x) => x.config.mode === 'listener')) {
    const tag = str(isObj(p.config.server) ? p.config.server.tag : undefined);
    const names = taggedUpstreams.filter((u) => tag !== undefined && u.tags.includes(tag)).map((u) => u.name);
    if (arr(p.config.tools).length > 0)
      report.warnings.push(
        `${p.where}.config.tools on a listener are not mapped: declare them on a conversion-only plugin`,
      );
    if (names.length === 0) {
      report.errors.push(
        `${p.where}: no conversion-only plugin is tagged ${JSON.stringify(tag ?? '(no server.tag)')}`,
      );
      continue;
    }
    addRoute(p, names, defaultAcl(p, report));
  }
  const routed = new Set(routes.flatMap((r) => r.upstreams as string[]));
  for (const u of taggedUpstreams)
    if (!routed.has(u.name))
      report.warnings.push(`upstream ${u.name}: no listener serves its tag(s); it is on no route`);

  for (const p of plugins) {
    if (p.name === 'ai-mcp-proxy' || p.name === 'ai-mcp-oauth2') continue;
    if (p.name === 'key-auth')
      report.warnings.push(
        `${p.where}: key-auth is not mapped; use Gatehouse API keys (routes[].auth.api_keys: true, gatehouse keys create)`,
      );
    else if (p.name === 'acl')
      report.warnings.push(`${p.where}: the acl plugin is not mapped; use routes[].acl (group subjects)`);
    else report.warnings.push(`${p.where}: plugin ${p.name} is not mapped`);
  }
  if (arr(deck.consumers).length > 0)
    report.warnings.push(
      'consumers are not imported: Gatehouse callers are token subjects or API keys (gatehouse keys create); their credentials cannot be carried over',
    );
  if (arr(deck.consumer_groups).length > 0)
    report.warnings.push(
      "consumer_groups are not imported as such: ACL entries name groups from the token's groups claim (or an API key's --group)",
    );
  if (proxies.length === 0) report.errors.push('no ai-mcp-proxy plugin found: nothing to import');

  const config: Obj = {};
  if (maxBody > 0) config.limits = { max_body_bytes: maxBody };
  config.upstreams = upstreams;
  config.routes = routes;
  return { config, report };
}
