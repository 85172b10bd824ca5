// Human-friendly durations ("30s", "5m") and sizes ("1MiB") in config, normalised to ms and bytes.

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KB: 1000,
  KiB: 1024,
  MB: 1_000_000,
  MiB: 1024 ** 2,
  GB: 1_000_000_000,
  GiB: 1024 ** 3,
};

/** Milliseconds for a duration string or a number of ms; undefined when malformed. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined;
  const m = DURATION.exec(v.trim());
  return m ? Math.round(Number(m[1]) * (DURATION_MS[m[2]!] ?? 0)) : undefined;
}

/** Bytes for a size string or a number of bytes; undefined when malformed. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  const m = SIZE.exec(v.trim());
  return m ? Math.round(Number(m[1]) * (SIZE_BYTES[m[2]!] ?? 0)) : undefined;
}
