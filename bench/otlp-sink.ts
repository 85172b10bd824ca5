// The telemetry benchmark's trace collector: accepts OTLP/HTTP exports on POST /v1/traces (200 `{}`, as an
// OpenTelemetry Collector answers) and discards them, counting requests, bytes and spans (the `"spanId":`
// keys of the JSON encoding, without parsing it). GET /stats answers the counts as JSON. A process of its
// own, so that its CPU is measured apart from the gateway's and the load generator's.
// Usage: node bench/otlp-sink.ts --port P
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const SPAN_KEY = '"spanId":';

const stats = { requests: 0, bytes: 0, spans: 0, rejected: 0 };

function countSpans(body: string): number {
  let n = 0;
  for (let i = body.indexOf(SPAN_KEY); i !== -1; i = body.indexOf(SPAN_KEY, i + SPAN_KEY.length)) n++;
  return n;
}

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      stats.rejected++;
      res.writeHead(404).end();
      return;
    }
    const body = Buffer.concat(chunks);
    stats.requests++;
    stats.bytes += body.length;
    if (String(req.headers['content-type'] ?? '').startsWith('application/json')) {
      stats.spans += countSpans(body.toString('utf8'));
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
}).listen(Number(values.port), '127.0.0.1');
