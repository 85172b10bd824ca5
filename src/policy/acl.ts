// Access control with Kong's semantics, compiled once from config, for tools, prompts and resources: a
// route's default ACL applies to everything without an ACL of its own; an item's ACL replaces the default
// entirely (no merging); deny beats allow; when an allow list exists and no subject of the caller is on it,
// the call is denied. A rule may also require OAuth scopes; a caller whose subjects pass but who lacks a
// scope is refused with the scopes it would need (so the edge can answer a step-up challenge).
// Pure: principals and names in, decisions (with the reason, for audit) out.

import { globToRegExp } from '../catalog/filter.ts';

/** An ACL as written in config. Entries name subjects: `user:alice`, `group:ops`, `agent:bot`, `tenant:t1`, `claim:dept=sales`, or a bare value matching any kind. */
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

/** Every token a subject is known by: typed (`group:ops`) and bare (`ops`). */
export function subjectTokens(s: AclSubject): Set<string> {
  const out = new Set<string>();
  const add = (kind: string, value: string) => {
    out.add(`${kind}:${value}`);
    out.add(value);
  };
  add('user', s.user);
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

const compileGlobs = (rules: Readonly<Record<string, AclRule>> | undefined, what: string) =>
  Object.entries(rules ?? {}).map(([pattern, rule]) => ({
    match: globToRegExp(pattern),
    rule: compileRule(rule, `the ${what} ACL of ${pattern}`),
  }));

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
  readonly #globs: Record<AclKind, { match: RegExp; rule: CompiledRule }[]>;
  readonly #entries: ReadonlyMap<string, CompiledRule>;
  /** The rule of each item, resolved once: lookups on the hot path never scan the globs again. */
  readonly #resolved: Record<AclKind, Map<string, CompiledRule | null>> = {
    tool: new Map(),
    prompt: new Map(),
    resource: new Map(),
  };
  /** Whether any rule requires a scope (else listing never needs the caller's scopes). */
  readonly usesScopes: boolean;

  constructor(config: AclConfig) {
    this.#default = config.default ? compileRule(config.default, 'the route default ACL') : undefined;
    this.#globs = {
      tool: compileGlobs(config.tools, 'tool'),
      prompt: compileGlobs(config.prompts, 'prompt'),
      resource: compileGlobs(config.resources, 'resource'),
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

  #ruleFor(kind: AclKind, upstream: string, name: string): CompiledRule | undefined {
    const key = `${upstream}:${name}`;
    const cache = this.#resolved[kind];
    let rule = cache.get(key);
    if (rule === undefined) {
      rule =
        this.#globs[kind].find((r) => r.match.test(key))?.rule ??
        (kind === 'tool' ? this.#entries.get(key) : undefined) ??
        this.#default ??
        null;
      // Resource URIs come from clients too (reads of unlisted URIs): bound what is remembered.
      if (cache.size < 100_000) cache.set(key, rule);
    }
    return rule ?? undefined;
  }

  /**
   * Whether an item is listed for the caller, without building reasons. With `stepUp`, an item refused only
   * for a missing scope stays listed: the client may call it and be challenged for the scope.
   */
  lists(caller: AclCaller, kind: AclKind, upstream: string, name: string, stepUp: boolean): boolean {
    const rule = this.#ruleFor(kind, upstream, name);
    if (!rule) return true;
    if (checkSubjects(rule, caller.tokens) !== 'pass') return false;
    if (stepUp) return true;
    for (const s of rule.scopes) if (!caller.scopes.has(s)) return false;
    return true;
  }

  /** May the caller use `<upstream>:<name>`, and why (for audit). */
  decide(caller: AclCaller, kind: AclKind, upstream: string, name: string): AclDecision {
    const rule = this.#ruleFor(kind, upstream, name);
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
      else if (!/^(user|agent|tenant|claim):/.test(e)) out.add(e);
    }
  }
  return out;
}
