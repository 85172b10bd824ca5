// Include/exclude curation of an upstream's tools and prompts, by glob: on the upstream itself (its own
// names) or route-wide as `<upstream>:<name>` (`:` cannot occur in a tool name).

export interface FilterConfig {
  include?: readonly string[] | undefined;
  exclude?: readonly string[] | undefined;
}

/** A compiled filter: true when the name is exposed. Compiled once from config, never per request. */
export type NameFilter = (name: string) => boolean;

/** `*` matches any run of characters, `?` exactly one; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function compileFilter(config: FilterConfig | undefined): NameFilter {
  const include = config?.include?.map(globToRegExp);
  const exclude = config?.exclude?.map(globToRegExp) ?? [];
  if ((!include || include.length === 0) && exclude.length === 0) return () => true;
  return (name) =>
    (!include || include.length === 0 || include.some((r) => r.test(name))) &&
    !exclude.some((r) => r.test(name));
}
