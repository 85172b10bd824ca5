import { runConformance } from './run-conformance.ts';
const t = Date.now();
const r = await runConformance(process.argv[2]!);
console.log('passed', r.passed.length, JSON.stringify(r.passed));
for (const f of r.failed) console.log('FAIL', f.scenario, '::', f.detail);
for (const f of r.warnings) console.log('WARN', f.scenario, '::', f.detail);
console.log('ms', Date.now() - t);
