// Transport guards: the Origin/Host checks that defend against DNS rebinding, and Accept negotiation.

import { describe, expect, it } from 'vitest';
import { accepts, buildOriginPolicy } from '../../src/http/guards.ts';

type PolicyOptions = Parameters<typeof buildOriginPolicy>[0];

function policy(overrides: Partial<PolicyOptions> = {}) {
  return buildOriginPolicy({
    listenHost: '127.0.0.1',
    port: () => 8080,
    tls: false,
    publicUrl: undefined,
    allowedOrigins: undefined,
    allowedHosts: undefined,
    ...overrides,
  });
}

describe('Origin, by default', () => {
  it('lets a request without Origin through (non-browser clients)', () => {
    expect(policy().originAllowed(undefined)).toBe(true);
    expect(policy({ allowedOrigins: ['https://app.example.com'] }).originAllowed(undefined)).toBe(true);
  });

  it.each(['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080', 'HTTP://LOCALHOST:8080'])(
    'allows the listen address and loopback names on the listen port: %s',
    (origin) => {
      expect(policy().originAllowed(origin)).toBe(true);
    },
  );

  it.each([
    ['another site', 'https://evil.example'],
    ['a rebinding name on the same port', 'http://attacker.example:8080'],
    ['loopback on another port', 'http://127.0.0.1:9999'],
    ['loopback without the port', 'http://localhost'],
    ['the wrong scheme', 'https://127.0.0.1:8080'],
    ['the opaque origin of a sandboxed page', 'null'],
    ['an empty Origin', ''],
  ])('refuses %s', (_name, origin) => {
    expect(policy().originAllowed(origin)).toBe(false);
  });

  it('uses https origins when the listener has TLS', () => {
    const p = policy({ tls: true, port: () => 8443 });
    expect(p.originAllowed('https://localhost:8443')).toBe(true);
    expect(p.originAllowed('http://localhost:8443')).toBe(false);
  });

  it('allows the listen host itself, and brackets an IPv6 listen address', () => {
    expect(policy({ listenHost: '192.168.1.20' }).originAllowed('http://192.168.1.20:8080')).toBe(true);
    expect(policy({ listenHost: '::1' }).originAllowed('http://[::1]:8080')).toBe(true);
    expect(policy({ listenHost: 'fd00::5' }).originAllowed('http://[fd00::5]:8080')).toBe(true);
    expect(policy({ listenHost: 'fd00::5' }).originAllowed('http://fd00::5:8080')).toBe(false);
  });

  it('names the port bound at listen time, not the configured 0', () => {
    let bound = 0;
    const p = policy({ port: () => bound });
    bound = 41234; // the listener picked a free port before the first request
    expect(p.originAllowed('http://127.0.0.1:41234')).toBe(true);
    expect(p.originAllowed('http://127.0.0.1:0')).toBe(false);
  });

  it('adds the origin of public_url (with its own scheme and default port elided)', () => {
    const p = policy({ publicUrl: 'https://gw.example.com' });
    expect(p.originAllowed('https://gw.example.com')).toBe(true);
    expect(p.originAllowed('https://GW.example.com')).toBe(true);
    expect(p.originAllowed('http://gw.example.com')).toBe(false);
    expect(p.originAllowed('https://gw.example.com:8443')).toBe(false);
    expect(p.originAllowed('http://localhost:8080')).toBe(true);
  });

  it('keeps the explicit port of public_url', () => {
    const p = policy({ publicUrl: 'https://gw.example.com:8443' });
    expect(p.originAllowed('https://gw.example.com:8443')).toBe(true);
    expect(p.originAllowed('https://gw.example.com')).toBe(false);
  });

  // default origins are built as scheme://host:port even
  // for the scheme's default port, but browsers omit :80 / :443 from Origin, so a page served by the gateway
  // itself on port 80 (or 443 with TLS) is refused.
  it('allows the browser form of the listen origin on the default port', () => {
    expect(policy({ port: () => 80 }).originAllowed('http://127.0.0.1')).toBe(true);
  });

  // the listen host goes into the defaults as written while the
  // header is lowercased before lookup, so `listen.host: MyHost.local` refuses its own Host and Origin.
  it('compares the listen host case-insensitively', () => {
    const p = policy({ listenHost: 'GW.Local' });
    expect(p.hostAllowed('gw.local:8080')).toBe(true);
    expect(p.originAllowed('http://gw.local:8080')).toBe(true);
  });
});

describe('Origin, configured', () => {
  it('replaces the defaults with allowed_origins (trailing slash and case ignored)', () => {
    const p = policy({ allowedOrigins: ['https://App.example.com/'] });
    expect(p.originAllowed('https://app.example.com')).toBe(true);
    expect(p.originAllowed('http://localhost:8080')).toBe(false);
    expect(p.originAllowed('https://app.example.com.evil.example')).toBe(false);
  });

  it('allows any origin with "*"', () => {
    const p = policy({ allowedOrigins: ['*'] });
    expect(p.originAllowed('https://anything.example')).toBe(true);
    expect(p.originAllowed('null')).toBe(true);
  });

  it('does not treat "*" inside an origin as a wildcard', () => {
    const p = policy({ allowedOrigins: ['https://*.example.com'] });
    expect(p.originAllowed('https://a.example.com')).toBe(false);
  });

  it('refuses every browser origin with an empty list', () => {
    const p = policy({ allowedOrigins: [] });
    expect(p.originAllowed('http://localhost:8080')).toBe(false);
    expect(p.originAllowed(undefined)).toBe(true);
  });
});

describe('Host, by default', () => {
  it.each([
    '127.0.0.1:8080',
    'localhost:8080',
    'LOCALHOST:8080',
    '[::1]:8080',
    '127.0.0.1',
    'localhost',
    '[::1]',
    'localhost:1', // the port is not compared: the listener already decided which port it serves
  ])('allows %s', (host) => {
    expect(policy().hostAllowed(host)).toBe(true);
  });

  it.each([
    ['a missing Host', undefined],
    ['an empty Host', ''],
    ['a rebinding name', 'attacker.example:8080'],
    ['a name that starts like localhost', 'localhost.attacker.example'],
    ['an IPv6 address without brackets', '::1'],
    ['another address', '10.0.0.1:8080'],
  ])('refuses %s', (_name, host) => {
    expect(policy().hostAllowed(host)).toBe(false);
  });

  it('adds the listen host, IPv6 in brackets', () => {
    expect(policy({ listenHost: '192.168.1.20' }).hostAllowed('192.168.1.20:8080')).toBe(true);
    expect(policy({ listenHost: 'fd00::5' }).hostAllowed('[fd00::5]:8080')).toBe(true);
    expect(policy({ listenHost: '[fd00::5]' }).hostAllowed('[fd00::5]')).toBe(true);
  });

  it("adds public_url's host (any port, any case)", () => {
    const p = policy({ publicUrl: 'https://gw.example.com' });
    expect(p.hostAllowed('gw.example.com')).toBe(true);
    expect(p.hostAllowed('GW.Example.COM:443')).toBe(true);
    expect(p.hostAllowed('other.example.com')).toBe(false);
  });

  it('adds an IPv6 public_url host in brackets', () => {
    expect(policy({ publicUrl: 'http://[2001:db8::1]:9000' }).hostAllowed('[2001:db8::1]:9000')).toBe(true);
  });
});

describe('Host, configured', () => {
  it('replaces the defaults with allowed_hosts (case-insensitive)', () => {
    const p = policy({ allowedHosts: ['GW.internal'] });
    expect(p.hostAllowed('gw.internal:8080')).toBe(true);
    expect(p.hostAllowed('localhost:8080')).toBe(false);
  });

  it('allows any Host with "*", even a missing one', () => {
    const p = policy({ allowedHosts: ['*'] });
    expect(p.hostAllowed('anything.example:1')).toBe(true);
    expect(p.hostAllowed(undefined)).toBe(true);
  });

  it('matches a bracketed IPv6 entry', () => {
    expect(policy({ allowedHosts: ['[::1]'] }).hostAllowed('[::1]:8080')).toBe(true);
  });

  // the port is stripped from the header but not from the
  // configured entries, so an entry written as a Host header value with a port (what the schema describes:
  // "Host header values accepted") never matches anything.
  it('matches an allowed_hosts entry written with a port', () => {
    expect(policy({ allowedHosts: ['gw.example.com:8443'] }).hostAllowed('gw.example.com:8443')).toBe(true);
  });
});

describe('accepts', () => {
  const JSON_TYPE = 'application/json';
  const SSE = 'text/event-stream';

  it('finds an exact media type in a list', () => {
    expect(accepts('application/json, text/event-stream', JSON_TYPE)).toBe(true);
    expect(accepts('application/json, text/event-stream', SSE)).toBe(true);
    expect(accepts('application/json', SSE)).toBe(false);
  });

  it('refuses a missing or empty header', () => {
    expect(accepts(undefined, JSON_TYPE)).toBe(false);
    expect(accepts('', JSON_TYPE)).toBe(false);
  });

  it('accepts */* and type/* wildcards', () => {
    expect(accepts('*/*', JSON_TYPE)).toBe(true);
    expect(accepts('*/*', SSE)).toBe(true);
    expect(accepts('application/*', JSON_TYPE)).toBe(true);
    expect(accepts('application/*', SSE)).toBe(false);
    expect(accepts('text/*', SSE)).toBe(true);
  });

  it('does not treat other partial wildcards or prefixes as matches', () => {
    expect(accepts('*/json', JSON_TYPE)).toBe(false);
    expect(accepts('application/json-seq', JSON_TYPE)).toBe(false);
    expect(accepts('text/event-stream-x', SSE)).toBe(false);
  });

  it('ignores case and parameters', () => {
    expect(accepts('Application/JSON; charset=utf-8', JSON_TYPE)).toBe(true);
    expect(accepts('TEXT/Event-Stream;q=0.5', SSE)).toBe(true);
  });

  it.each(['q=0', 'q=0.0', 'q=0.000', 'Q=0', ' q = 0 '])('refuses a range with %s', (q) => {
    expect(accepts(`application/json;${q}`, JSON_TYPE)).toBe(false);
    expect(accepts(`*/*;${q}`, JSON_TYPE)).toBe(false);
    expect(accepts(`application/*;${q}`, JSON_TYPE)).toBe(false);
  });

  it('accepts a small but positive q', () => {
    expect(accepts('application/json;q=0.001', JSON_TYPE)).toBe(true);
    expect(accepts('application/json;q=0.5', JSON_TYPE)).toBe(true);
    expect(accepts('application/json;q=1', JSON_TYPE)).toBe(true);
  });

  it('accepts through a later range when an earlier one says q=0', () => {
    expect(accepts('text/event-stream;q=0, application/json', JSON_TYPE)).toBe(true);
    expect(accepts('text/event-stream;q=0, application/json', SSE)).toBe(false);
  });

  // ranges are tried independently, so `*/*` admits a type that a
  // more specific range refuses with q=0. RFC 9110 §12.5.1: the most specific range decides.
  it('lets a specific q=0 override a wildcard', () => {
    expect(accepts('application/json;q=0, */*', JSON_TYPE)).toBe(false);
    expect(accepts('*/*, text/event-stream;q=0', SSE)).toBe(false);
  });

  // only the whole part is trimmed, so whitespace before ';'
  // (allowed: OWS ";" OWS in RFC 9110) leaves "application/json " which never equals the type.
  it('allows whitespace before a parameter', () => {
    expect(accepts('application/json ;q=1, text/event-stream', JSON_TYPE)).toBe(true);
  });
});
