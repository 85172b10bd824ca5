// Transport guards built once at start-up: Origin and Host (DNS-rebinding defence) and Accept.

export interface OriginPolicy {
  /** True when the request may proceed. A missing Origin always passes (non-browser clients). */
  originAllowed(origin: string | undefined): boolean;
  hostAllowed(host: string | undefined): boolean;
}

export function buildOriginPolicy(opts: {
  listenHost: string;
  /** The bound port (known only once listening when the config says 0). */
  port: () => number;
  tls: boolean;
  publicUrl: string | undefined;
  allowedOrigins: string[] | undefined;
  allowedHosts: string[] | undefined;
}): OriginPolicy {
  const scheme = opts.tls ? 'https' : 'http';
  const defaultHosts = new Set(['localhost', '127.0.0.1', '[::1]', bracket(opts.listenHost)]);
  const publicUrl = opts.publicUrl ? new URL(opts.publicUrl) : undefined;
  if (publicUrl) defaultHosts.add(publicUrl.hostname);
  const hosts = opts.allowedHosts ? new Set(opts.allowedHosts.map((h) => h.toLowerCase())) : defaultHosts;
  const anyHost = hosts.has('*');
  // Default origins name the bound port, so they are computed on first use (after listen).
  let origins: Set<string> | undefined = opts.allowedOrigins
    ? new Set(opts.allowedOrigins.map((o) => o.replace(/\/$/, '').toLowerCase()))
    : undefined;
  const defaultOrigins = () => {
    const set = new Set<string>();
    const port = opts.port();
    for (const h of ['localhost', '127.0.0.1', '[::1]', bracket(opts.listenHost)]) set.add(`${scheme}://${h}:${port}`);
    if (publicUrl) set.add(publicUrl.origin);
    return set;
  };
  return {
    originAllowed(origin) {
      if (origin === undefined) return true;
      origins ??= defaultOrigins();
      return origins.has('*') || origins.has(origin.toLowerCase());
    },
    hostAllowed(host) {
      if (anyHost) return true;
      if (host === undefined) return false;
      return hosts.has(hostname(host.toLowerCase()));
    },
  };
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The host part of a Host header value, without the port. */
function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) {
    const end = hostHeader.indexOf(']');
    return end < 0 ? hostHeader : hostHeader.slice(0, end + 1);
  }
  const colon = hostHeader.indexOf(':');
  return colon < 0 ? hostHeader : hostHeader.slice(0, colon);
}

/** Whether an Accept header admits a media type (with type/* and *\/* wildcards; q=0 refuses). */
export function accepts(accept: string | undefined, type: string): boolean {
  if (!accept) return false;
  const [major] = type.split('/');
  for (const part of accept.split(',')) {
    const [range, ...params] = part.trim().toLowerCase().split(';');
    if (params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(p))) continue;
    if (range === type || range === '*/*' || range === `${major}/*`) return true;
  }
  return false;
}
