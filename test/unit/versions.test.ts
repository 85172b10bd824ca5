// Protocol revisions: which ones the gateway speaks, how it negotiates, and what differs between them.

import { describe, expect, it } from 'vitest';
import {
  allowsBatches,
  DEFAULT_NEGOTIATED_VERSION,
  isSupportedVersion,
  LATEST_VERSION,
  negotiateVersion,
  PROTOCOL_VERSIONS,
  primesStreams,
} from '../../src/mcp/versions.ts';

describe('protocol versions', () => {
  it('speaks the four revisions before 2026-07-28, newest first', () => {
    expect(PROTOCOL_VERSIONS).toEqual(['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05']);
    expect(LATEST_VERSION).toBe(PROTOCOL_VERSIONS[0]);
  });

  it('assumes 2025-03-26 without a header, as the spec says', () => {
    expect(DEFAULT_NEGOTIATED_VERSION).toBe('2025-03-26');
    expect(isSupportedVersion(DEFAULT_NEGOTIATED_VERSION)).toBe(true);
  });

  it('knows exactly the listed versions', () => {
    for (const v of PROTOCOL_VERSIONS) expect(isSupportedVersion(v)).toBe(true);
    for (const v of ['2026-07-28', '2025-11-24', '2024-10-07', '', 'latest', ' 2025-06-18', '2025-06-18 ']) {
      expect(isSupportedVersion(v), v).toBe(false);
    }
  });

  it("answers an initialize with the client's version when supported", () => {
    for (const v of PROTOCOL_VERSIONS) expect(negotiateVersion(v)).toBe(v);
  });

  it('answers with the latest version when the requested one is unknown or malformed', () => {
    for (const v of [
      '2026-07-28',
      '1999-01-01',
      '',
      20250618,
      null,
      undefined,
      ['2025-06-18'],
      { v: '2025-06-18' },
    ]) {
      expect(negotiateVersion(v)).toBe(LATEST_VERSION);
    }
  });

  it('allows JSON-RPC batches in 2025-03-26, not from 2025-06-18 on (which removed them)', () => {
    expect(allowsBatches('2025-03-26')).toBe(true);
    expect(allowsBatches('2025-06-18')).toBe(false);
    expect(allowsBatches('2025-11-25')).toBe(false);
  });

  it('primes resumable SSE streams (id + empty data, retry) from 2025-11-25 only', () => {
    expect(primesStreams('2025-11-25')).toBe(true);
    for (const v of ['2025-06-18', '2025-03-26', '2024-11-05'] as const)
      expect(primesStreams(v), v).toBe(false);
  });
});
