// Include/exclude curation of an upstream's tools and prompts, by glob: on the upstream itself (its own
// names) or route-wide as `<upstream>:<name>` (`:` cannot occur in a tool name).

export interface FilterConfig {
  include?: readonly string[] | undefined;
  exclude?: readonly string[] | undefined;
}

/** A compiled filter: true when the name is exposed. Compiled once from config, never per request. */
export type NameFilter = (name: string) => boolean;

/**
 * A glob (`*` any run of characters, `?` one; everything else literal) as a matcher that runs in
 * O(pattern × text) time. Not a regular expression: names and resource URIs come from upstreams and clients
 * (up to the body limit), and a backtracking `.*…*` over a long one would hold the event loop for minutes.
 */
export function globMatcher(glob: string): (text: string) => boolean {
  if (!glob.includes('*') && !glob.includes('?')) return (text) => text === glob;
  return (text) => {
    let t = 0;
    let g = 0;
    let star = -1;
    let resume = 0;
    while (t < text.length) {
      const c = glob[g];
      if (c === '*') {
        star = g++;
        resume = t;
      } else if (g < glob.length && (c === '?' || c === text[t])) {
        g++;
        t++;
      } else if (star !== -1) {
        g = star + 1;
        t = ++resume;
      } else return false;
    }
    while (glob[g] === '*') g++;
    return g === glob.length;
  };
}

export function compileFilter(config: FilterConfig | undefined): NameFilter {
  const include = config?.include?.map(globMatcher);
  const exclude = config?.exclude?.map(globMatcher) ?? [];
  if ((!include || include.length === 0) && exclude.length === 0) return () => true;
  return (name) =>
    (!include || include.length === 0 || include.some((m) => m(name))) && !exclude.some((m) => m(name));
}
