#!/usr/bin/env node
// Runs the compiled CLI when published (dist/), the TypeScript sources in a checkout (Node >= 22.18).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('../src/cli/main.ts', import.meta.url).href);
