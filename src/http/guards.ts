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
  const defaultPort = opts.tls ? 443 : 80;
  const listenHost = bracket(opts.listenHost.toLowerCase());
  const defaultHosts = new Set(['localhost', '127.0.0.1', '[::1]', listenHost]);
  const publicUrl = opts.publicUrl ? new URL(opts.publicUrl) : undefined;
  if (publicUrl) defaultHosts.add(publicUrl.hostname);
  // Entries may be written as Host header values (with a port) or bare IPv6 addresses: compare host parts.
  const hosts = opts.allowedHosts
    ? new Set(opts.allowedHosts.map((h) => (h === '*' ? h : hostEntry(h.toLowerCase()))))
    : defaultHosts;
  const anyHost = hosts.has('*');
  // Default origins name the bound port, so they are computed on first use (after listen).
  let origins: Set<string> | undefined = opts.allowedOrigins
    ? new Set(opts.allowedOrigins.map((o) => o.replace(/\/$/, '').toLowerCase()))
    : undefined;
  const defaultOrigins = () => {
    const set = new Set<string>();
    const port = opts.port();
    for (const h of ['localhost', '127.0.0.1', '[::1]', listenHost]) {
      set.add(`${scheme}://${h}:${port}`);
      if (port === defaultPort) set.add(`${scheme}://${h}`); // browsers omit the default port
    }
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

/** An allowed_hosts entry as a host part: port dropped, a bare IPv6 address bracketed like in Host. */
function hostEntry(h: string): string {
  if (h.startsWith('[')) return hostname(h);
  return h.split(':').length > 2 ? `[${h}]` : hostname(h);
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

/**
 * Whether an Accept header admits a media type (RFC 9110 §12.5.1): the most specific matching range
 * decides (type/subtype over type/* over *\/*), and q=0 refuses.
 */
export function accepts(accept: string | undefined, type: string): boolean {
  if (!accept) return false;
  const major = type.slice(0, type.indexOf('/'));
  let best = -1;
  let bestQ = 0;
  for (const part of accept.split(',')) {
    const [rawRange = '', ...params] = part.split(';');
    const range = rawRange.trim().toLowerCase();
    const specificity = range === type ? 2 : range === `${major}/*` ? 1 : range === '*/*' ? 0 : -1;
    if (specificity <= best) continue;
    best = specificity;
    bestQ = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k?.trim().toLowerCase() === 'q') bestQ = Number(v?.trim());
    }
  }
  return best >= 0 && bestQ > 0;
}
