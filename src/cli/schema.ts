// `gatehouse schema`: print the JSON Schema of the configuration (for editors; config.schema.json).

import { configJsonSchema } from '../config/schema.ts';

export function schemaText(): string {
  return `${JSON.stringify({ $id: 'https://gatehouse.dev/config.schema.json', title: 'Gatehouse configuration', ...configJsonSchema() }, null, 2)}\n`;
}
