// Access control with Kong's semantics, compiled once from config, for tools, prompts and resources: a
// route's default ACL applies to everything without an ACL of its own; an item's ACL replaces the default
// entirely (no merging); deny beats allow; when an allow list exists and no subject of the caller is on it,
// the call is denied. A rule may also require OAuth scopes; a caller whose subjects pass but who lacks a
// scope is refused with the scopes it would need (so the edge can answer a step-up challenge).
// Pure: principals and names in, decisions (with the reason, for audit) out.

import { globMatcher } from '../catalog/filter.ts';

/** An ACL as written in config. Entries name subjects: `user:alice`, `key:ci-bot`, `group:ops`, `agent:bot`, `tenant:t1`, `claim:dept=sales`, or a bare value matching any kind. */
export interface AclRule {
  allow?: readonly string[] | undefined;
  deny?: readonly string[] | undefined;
  /** OAuth scopes the caller must hold, all of them. */
  scopes?: readonly string[] | undefined;
}

export type AclKind = 'tool' | 'prompt' | 'resource';

export interface AclConfig {
  /** Applies to every tool, prompt and resource with no rule of its own. */
  default?: AclRule | undefined;
  /** Route-wide rules by `<upstream>:<tool>` glob; the first matching entry (in order) is the tool's ACL. */
  tools?: Readonly<Record<string, AclRule>> | undefined;
  /** Route-wide rules by `<upstream>:<prompt>` glob. */
  prompts?: Readonly<Record<string, AclRule>> | undefined;
  /** Route-wide rules by `<upstream>:<uri>` glob (templates match by their template text). */
  resources?: Readonly<Record<string, AclRule>> | undefined;
  /** Tools' own ACLs from their upstream's entry, by exact `<upstream>:<tool>`; a route-wide rule still wins. */
  toolEntries?: Readonly<Record<string, AclRule>> | undefined;
}

/** The caller as the ACL sees it. */
export interface AclSubject {
  user: string;
  /** An API key's caller is named `key:<name>`, never `user:<name>` (user ids come from the IdP). */
  userKind?: 'user' | 'key' | undefined;
  groups: readonly string[];
  agent?: string | undefined;
  tenant?: string | undefined;
  /** Configured claim values, by claim name. */
  claims?: Readonly<Record<string, readonly string[]>> | undefined;
  /** The OAuth scopes the caller holds. */
  scopes?: readonly string[] | undefined;
}

/** A caller compiled for lookups: every token it is known by, and its scopes. */
export interface AclCaller {
  tokens: ReadonlySet<string>;
  scopes: ReadonlySet<string>;
}

export type AclDecision =
  | { allow: true; reason: string }
  | {
      allow: false;
      reason: string;
      /** Set when the caller's subjects pass and only these scopes are missing (a step-up may help). */
      missingScopes?: readonly string[];
    };

interface CompiledRule {
  source: string;
  allow: ReadonlySet<string> | undefined;
  deny: ReadonlySet<string>;
  scopes: readonly string[];
}

/** The kinds an entry may name; an entry starting with one of them is typed, any other is bare. */
const TYPED = /^(user|key|group|agent|tenant|claim):/;

/**
 * Every token a subject is known by: typed (`group:ops`) and bare (`ops`). A value that itself reads as a
 * typed entry (a user whose id is `group:admins`, an API key named so) is known only by its typed token:
 * bare, it would match the entry of another kind.
 */
export function subjectTokens(s: AclSubject): Set<string> {
  const out = new Set<string>();
  const add = (kind: string, value: string) => {
    out.add(`${kind}:${value}`);
    if (!TYPED.test(value)) out.add(value);
  };
  add(s.userKind ?? 'user', s.user);
  for (const g of s.groups) add('group', g);
  if (s.agent !== undefined) add('agent', s.agent);
  if (s.tenant !== undefined) add('tenant', s.tenant);
  for (const [claim, values] of Object.entries(s.claims ?? {}))
    for (const v of values) add('claim', `${claim}=${v}`);
  return out;
}

/** A caller ready for the ACL: its tokens and scopes as sets. */
export function aclCaller(s: AclSubject): AclCaller {
  return { tokens: subjectTokens(s), scopes: new Set(s.scopes ?? []) };
}

function compileRule(rule: AclRule, source: string): CompiledRule {
  return {
    source,
    allow: rule.allow === undefined ? undefined : new Set(rule.allow),
    deny: new Set(rule.deny ?? []),
    scopes: [...new Set(rule.scopes ?? [])],
  };
}

/** Percent-decoded, up to three times (an upstream may decode twice); malformed escapes kept as they are. */
function percentDecode(s: string): string {
  for (let i = 0; i < 3 && s.includes('%'); i++) {
    let next: string;
    try {
      next = decodeURIComponent(s);
    } catch {
      next = s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
    }
    if (next === s) break;
    s = next;
  }
  return s;
}

/**
 * A resource URI as an upstream may understand it: scheme and authority in lower case, its path
 * percent-decoded, `\` read as `/`, empty and dot segments resolved (`file:///public/../secret` →
 * `file:///secret`). Query and fragment are left alone. A URI a rule would see differently in this form
 * is checked in both (see AclPolicy.decide).
 */
export function canonicalUri(uri: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri);
  const scheme = m ? `${m[1]!.toLowerCase()}:` : '';
  const rest = m ? uri.slice(m[0].length) : uri;
  const cut = rest.search(/[?#]/);
  const tail = cut === -1 ? '' : rest.slice(cut);
  let path = percentDecode(cut === -1 ? rest : rest.slice(0, cut)).replaceAll('\\', '/');
  let authority = '';
  if (path.startsWith('//')) {
    const end = path.indexOf('/', 2);
    authority = (end === -1 ? path : path.slice(0, end)).toLowerCase();
    path = end === -1 ? '' : path.slice(end);
  }
  const segments: string[] = [];
  const parts = path.split('/');
  for (const seg of parts) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const last = parts[parts.length - 1];
  const trailing = parts.length > 1 && (last === '' || last === '.' || last === '..') && segments.length > 0;
  const abs = path.startsWith('/');
  return `${scheme}${authority}${abs ? '/' : ''}${segments.join('/')}${trailing ? '/' : ''}${tail}`;
}

/** `<upstream>:<uri glob>` with its URI part in canonical form (the upstream name never has a `:`). */
function canonicalPattern(pattern: string): string {
  const i = pattern.indexOf(':');
  return i === -1 ? pattern : `${pattern.slice(0, i + 1)}${canonicalUri(pattern.slice(i + 1))}`;
}

interface CompiledGlob {
  match: (key: string) => boolean;
  /** Resources: the pattern in canonical form, for URIs in canonical form. */
  canonical: (key: string) => boolean;
  rule: CompiledRule;
}

const compileGlobs = (
  rules: Readonly<Record<string, AclRule>> | undefined,
  what: string,
  canonical: boolean,
): CompiledGlob[] =>
  Object.entries(rules ?? {}).map(([pattern, rule]) => {
    const match = globMatcher(pattern);
    return {
      match,
      canonical: canonical ? globMatcher(canonicalPattern(pattern)) : match,
      rule: compileRule(rule, `the ${what} ACL of ${pattern}`),
    };
  });

/** Items whose rule is remembered (per kind), and the longest name remembered: bounded memory. */
const RESOLVED_MAX = 100_000;
const RESOLVED_KEY_MAX = 1_024;

/** What a subject check alone says (scopes aside). */
type Subjects = 'denied' | 'not-allowed' | 'pass';

function checkSubjects(rule: CompiledRule, tokens: ReadonlySet<string>): Subjects {
  for (const d of rule.deny) if (tokens.has(d)) return 'denied';
  if (rule.allow === undefined) return 'pass';
  for (const a of rule.allow) if (tokens.has(a)) return 'pass';
  return 'not-allowed';
}

export class AclPolicy {
  readonly #default: CompiledRule | undefined;
  readonly #globs: Record<AclKind, CompiledGlob[]>;
  readonly #entries: ReadonlyMap<string, CompiledRule>;
  /** The rule of each item, resolved once: lookups on the hot path never scan the globs again. */
  readonly #resolved: Record<AclKind | 'canonical', Map<string, CompiledRule | null>> = {
    tool: new Map(),
    prompt: new Map(),
    resource: new Map(),
    canonical: new Map(),
  };
  /** Whether any rule requires a scope (else listing never needs the caller's scopes). */
  readonly usesScopes: boolean;

  constructor(config: AclConfig) {
    this.#default = config.default ? compileRule(config.default, 'the route default ACL') : undefined;
    this.#globs = {
      tool: compileGlobs(config.tools, 'tool', false),
      prompt: compileGlobs(config.prompts, 'prompt', false),
      resource: compileGlobs(config.resources, 'resource', true),
    };
    this.#entries = new Map(
      Object.entries(config.toolEntries ?? {}).map(([k, rule]) => [
        k,
        compileRule(rule, `the ACL of tool ${k} (its upstream's entry)`),
      ]),
    );
    const all = [
      this.#default,
      ...Object.values(this.#globs).flatMap((g) => g.map((x) => x.rule)),
      ...this.#entries.values(),
    ];
    this.usesScopes = all.some((r) => r !== undefined && r.scopes.length > 0);
  }

  /** Whether any rule exists (a route without ACLs skips every check). */
  get empty(): boolean {
    return (
      this.#default === undefined &&
      this.#entries.size === 0 &&
      Object.values(this.#globs).every((g) => g.length === 0)
    );
  }

  /** Whether this kind of item has any rule (the default counts for every kind). */
  governs(kind: AclKind): boolean {
    return (
      this.#default !== undefined ||
      this.#globs[kind].length > 0 ||
      (kind === 'tool' && this.#entries.size > 0)
    );
  }

  #ruleFor(kind: AclKind, upstream: string, name: string, canonical = false): CompiledRule | undefined {
    const key = `${upstream}:${name}`;
    const cache = this.#resolved[canonical ? 'canonical' : kind];
    let rule = cache.get(key);
    if (rule === undefined) {
      rule =
        this.#globs[kind].find((r) => (canonical ? r.canonical(key) : r.match(key)))?.rule ??
        (kind === 'tool' ? this.#entries.get(key) : undefined) ??
        this.#default ??
        null;
      // Resource URIs come from clients too (reads of unlisted URIs): bound what is remembered.
      if (cache.size < RESOLVED_MAX && key.length <= RESOLVED_KEY_MAX) cache.set(key, rule);
    }
    return rule ?? undefined;
  }

  /**
   * A resource URI that reads differently once canonical (dot segments, percent-encoding, `\`): its
   * canonical form, whose rule must allow it too — else `file:///public/../secret` would pass a deny rule
   * on `file:///secret/*` and reach an upstream that resolves it. Undefined for anything else.
   */
  #canonical(kind: AclKind, name: string): string | undefined {
    if (kind !== 'resource' || this.#globs.resource.length === 0) return undefined;
    const c = canonicalUri(name);
    return c === name ? undefined : c;
  }

  #lists(caller: AclCaller, rule: CompiledRule | undefined, stepUp: boolean): boolean {
    if (!rule) return true;
    if (checkSubjects(rule, caller.tokens) !== 'pass') return false;
    if (stepUp) return true;
    for (const s of rule.scopes) if (!caller.scopes.has(s)) return false;
    return true;
  }

  /**
   * Whether an item is listed for the caller, without building reasons. With `stepUp`, an item refused only
   * for a missing scope stays listed: the client may call it and be challenged for the scope.
   */
  lists(caller: AclCaller, kind: AclKind, upstream: string, name: string, stepUp: boolean): boolean {
    if (!this.#lists(caller, this.#ruleFor(kind, upstream, name), stepUp)) return false;
    const c = this.#canonical(kind, name);
    return c === undefined || this.#lists(caller, this.#ruleFor(kind, upstream, c, true), stepUp);
  }

  /** May the caller use `<upstream>:<name>`, and why (for audit). */
  decide(caller: AclCaller, kind: AclKind, upstream: string, name: string): AclDecision {
    const d = this.#decide(caller, this.#ruleFor(kind, upstream, name));
    const c = this.#canonical(kind, name);
    if (!d.allow || c === undefined) return d;
    const dc = this.#decide(caller, this.#ruleFor(kind, upstream, c, true));
    return dc.allow ? d : { ...dc, reason: `${dc.reason} (the URI in canonical form)` };
  }

  #decide(caller: AclCaller, rule: CompiledRule | undefined): AclDecision {
    if (!rule) return { allow: true, reason: 'no ACL applies' };
    switch (checkSubjects(rule, caller.tokens)) {
      case 'denied': {
        const d = [...rule.deny].find((x) => caller.tokens.has(x));
        return { allow: false, reason: `${d} is denied by ${rule.source}` };
      }
      case 'not-allowed':
        return { allow: false, reason: `none of the caller's subjects is allowed by ${rule.source}` };
    }
    const missing = rule.scopes.filter((s) => !caller.scopes.has(s));
    if (missing.length > 0) {
      return {
        allow: false,
        reason: `${rule.source} requires scope ${missing.join(' ')}, which the caller's token lacks`,
        missingScopes: missing,
      };
    }
    if (rule.allow === undefined)
      return { allow: true, reason: `${rule.source} denies none of the caller's subjects` };
    const a = [...rule.allow].find((x) => caller.tokens.has(x));
    return { allow: true, reason: `${a} is allowed by ${rule.source}` };
  }
}

/** The groups an ACL config names (typed `group:x`, or bare names), for groups_required. */
export function aclGroups(config: AclConfig): Set<string> {
  const out = new Set<string>();
  const rules = [
    config.default,
    ...Object.values(config.tools ?? {}),
    ...Object.values(config.prompts ?? {}),
    ...Object.values(config.resources ?? {}),
    ...Object.values(config.toolEntries ?? {}),
  ];
  for (const r of rules) {
    for (const e of [...(r?.allow ?? []), ...(r?.deny ?? [])]) {
      if (e.startsWith('group:')) out.add(e.slice(6));
      else if (!/^(user|key|agent|tenant|claim):/.test(e)) out.add(e);
    }
  }
  return out;
}
