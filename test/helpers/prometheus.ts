// A strict little parser of the Prometheus text exposition format (0.0.4), for tests: every line must be a
// comment, blank, or a well-formed sample, else it throws.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** # TYPE of each metric family. */
  types: Map<string, string>;
  /** # HELP of each metric family. */
  help: Map<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

export function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (TYPE|HELP) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m?.[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3]!))
          throw new Error(`line ${i + 1}: bad TYPE`);
        out.types.set(m[2]!, m[3]!);
      } else if (m?.[1] === 'HELP') out.help.set(m[2]!, m[3]!);
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`line ${i + 1}: no metric name: ${line}`);
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      while (!rest.startsWith('}')) {
        const key = LABEL.exec(rest)?.[0];
        if (!key || rest[key.length] !== '=' || rest[key.length + 1] !== '"')
          throw new Error(`line ${i + 1}: bad label: ${line}`);
        rest = rest.slice(key.length + 2);
        let value = '';
        let j = 0;
        for (; j < rest.length && rest[j] !== '"'; j++) {
          if (rest[j] === '\\') {
            const c = rest[++j];
            value += c === 'n' ? '\n' : c === '\\' ? '\\' : c === '"' ? '"' : `\\${c}`;
          } else value += rest[j];
        }
        if (j >= rest.length) throw new Error(`line ${i + 1}: unterminated label value: ${line}`);
        if (key in labels) throw new Error(`line ${i + 1}: duplicate label ${key}`);
        labels[key] = value;
        rest = rest.slice(j + 1);
        if (rest.startsWith(',')) rest = rest.slice(1);
        else if (!rest.startsWith('}')) throw new Error(`line ${i + 1}: bad label list: ${line}`);
      }
      rest = rest.slice(1);
    }
    const m = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!m) throw new Error(`line ${i + 1}: bad value: ${line}`);
    // As Go's ParseFloat (Prometheus' parser): Inf and NaN in any case (prom-client writes "Nan").
    const v = m[1]!.toLowerCase();
    const value =
      v === '+inf' || v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : Number(v);
    if (Number.isNaN(value) && v !== 'nan') throw new Error(`line ${i + 1}: bad value: ${line}`);
    out.samples.push({ name, labels, value });
  }
  return out;
}

/** The samples of `name` whose labels include `labels`. */
export function samples(e: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => (s.labels[k] ?? '') === v),
  );
}

/** The sum of the values of those samples (0 when there are none). */
export function sample(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  return samples(e, name, labels).reduce((a, s) => a + s.value, 0);
}
