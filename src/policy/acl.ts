// Per-tool access control with Kong's semantics, compiled once from config: a route's default ACL applies
// to tools without an ACL of their own; a tool's ACL replaces the default entirely (no merging); deny beats
// allow; when an allow list exists and no subject of the caller is on it, the call is denied.
// Pure: principals and names in, decisions (with the reason, for audit) out.

import { globToRegExp } from '../catalog/filter.ts';

/** An ACL as written in config. Entries name subjects: `user:alice`, `group:ops`, `agent:bot`, `claim:dept=sales`, or a bare value matching any kind. */
export interface AclRule {
  allow?: readonly string[] | undefined;
  deny?: readonly string[] | undefined;
}

export interface AclConfig {
  /** Applies to every tool with no rule of its own. */
  default?: AclRule | undefined;
  /** Route-wide rules by `<upstream>:<tool>` glob; the first matching entry (in order) is the tool's ACL. */
  tools?: Readonly<Record<string, AclRule>> | undefined;
}

/** The caller as the ACL sees it. */
export interface AclSubject {
  user: string;
  groups: readonly string[];
  agent?: string | undefined;
  /** Configured claim values, by claim name. */
  claims?: Readonly<Record<string, readonly string[]>> | undefined;
}

export type AclDecision = { allow: true; reason: string } | { allow: false; reason: string };

interface CompiledRule {
  source: string;
  allow: ReadonlySet<string> | undefined;
  deny: ReadonlySet<string>;
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
  for (const [claim, values] of Object.entries(s.claims ?? {}))
    for (const v of values) add('claim', `${claim}=${v}`);
  return out;
}

function compileRule(rule: AclRule, source: string): CompiledRule {
  return {
    source,
    allow: rule.allow === undefined ? undefined : new Set(rule.allow),
    deny: new Set(rule.deny ?? []),
  };
}

export class AclPolicy {
  readonly #default: CompiledRule | undefined;
  readonly #rules: { match: RegExp; rule: CompiledRule }[];
  /** The rule of each tool, resolved once: lookups on the hot path never scan the globs again. */
  readonly #resolved = new Map<string, CompiledRule | null>();

  constructor(config: AclConfig) {
    this.#default = config.default ? compileRule(config.default, 'the route default ACL') : undefined;
    this.#rules = Object.entries(config.tools ?? {}).map(([pattern, rule]) => ({
      match: globToRegExp(pattern),
      rule: compileRule(rule, `the ACL of ${pattern}`),
    }));
  }

  /** Whether any rule exists (a route without ACLs skips every check). */
  get empty(): boolean {
    return this.#default === undefined && this.#rules.length === 0;
  }

  #ruleFor(upstream: string, tool: string): CompiledRule | undefined {
    const key = `${upstream}:${tool}`;
    let rule = this.#resolved.get(key);
    if (rule === undefined) {
      rule = this.#rules.find((r) => r.match.test(key))?.rule ?? this.#default ?? null;
      this.#resolved.set(key, rule);
    }
    return rule ?? undefined;
  }

  /** decide() without the reason (no strings built): for filtering long lists. */
  allows(tokens: ReadonlySet<string>, upstream: string, tool: string): boolean {
    const rule = this.#ruleFor(upstream, tool);
    if (!rule) return true;
    for (const d of rule.deny) if (tokens.has(d)) return false;
    if (rule.allow === undefined) return true;
    for (const a of rule.allow) if (tokens.has(a)) return true;
    return false;
  }

  /** May a caller known by `tokens` (see subjectTokens) use `<upstream>:<tool>`? */
  decide(tokens: ReadonlySet<string>, upstream: string, tool: string): AclDecision {
    const rule = this.#ruleFor(upstream, tool);
    if (!rule) return { allow: true, reason: 'no ACL applies' };
    for (const d of rule.deny)
      if (tokens.has(d)) return { allow: false, reason: `${d} is denied by ${rule.source}` };
    if (rule.allow === undefined)
      return { allow: true, reason: `${rule.source} denies none of the caller's subjects` };
    for (const a of rule.allow)
      if (tokens.has(a)) return { allow: true, reason: `${a} is allowed by ${rule.source}` };
    return { allow: false, reason: `none of the caller's subjects is allowed by ${rule.source}` };
  }
}

/** The groups an ACL config names (typed `group:x`, or bare names), for groups_required. */
export function aclGroups(config: AclConfig): Set<string> {
  const out = new Set<string>();
  const rules = [config.default, ...Object.values(config.tools ?? {})];
  for (const r of rules) {
    for (const e of [...(r?.allow ?? []), ...(r?.deny ?? [])]) {
      if (e.startsWith('group:')) out.add(e.slice(6));
      else if (!/^(user|agent|claim):/.test(e)) out.add(e);
    }
  }
  return out;
}
