// The synthetic tools of the bench upstream (`--tools M`): `tool_0 … tool_{M-1}` shaped like the tools of
// real MCP servers (200–400 bytes each), what calling one answers, and arguments that satisfy a schema.

export type JsonSchema = {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: string[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  default?: unknown;
};

export type ToolDefinition = { name: string; description: string; inputSchema: JsonSchema };

/** Five shapes of tool that real servers expose (search, fetch, create, transition, report), by index. */
const TEMPLATES: Array<(i: number) => Omit<ToolDefinition, 'name'>> = [
  (i) => ({
    description: `Searches the records of collection ${i} for a free-text query and returns at most \`limit\` matches, newest first. Use it before fetching a record by id.`,
    inputSchema: {
      type: 'object',
      properties: {
        query: { type: 'string', description: 'Free-text search terms.' },
        limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
      },
      required: ['query'],
    },
  }),
  (i) => ({
    description: `Fetches one record of collection ${i} by its id, with every field unless \`fields\` names some. Fails with a clear message when no such record exists.`,
    inputSchema: {
      type: 'object',
      properties: {
        id: { type: 'string', pattern: '^[a-z0-9-]{1,64}$' },
        fields: { type: 'array', items: { type: 'string' } },
      },
      required: ['id'],
    },
  }),
  (i) => ({
    description: `Creates a record in collection ${i} from a title and an optional Markdown body; returns the id and URL of the new record.`,
    inputSchema: {
      type: 'object',
      properties: {
        title: { type: 'string', maxLength: 200 },
        body: { type: 'string', description: 'Markdown.' },
        labels: { type: 'array', items: { type: 'string' } },
      },
      required: ['title'],
    },
  }),
  (i) => ({
    description: `Sets the status of a record of collection ${i}. Allowed transitions: open to in_progress to done; done is final.`,
    inputSchema: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        status: { type: 'string', enum: ['open', 'in_progress', 'done'] },
        comment: { type: 'string' },
      },
      required: ['id', 'status'],
    },
  }),
  (i) => ({
    description: `Summarises the activity of collection ${i} between two dates, both inclusive, as counts per day.`,
    inputSchema: {
      type: 'object',
      properties: {
        from: { type: 'string', format: 'date' },
        to: { type: 'string', format: 'date' },
        timezone: { type: 'string', default: 'UTC' },
      },
      required: ['from', 'to'],
    },
  }),
];

/** `tool_0 … tool_{count-1}`; the same list on every server, so that only prefixes tell them apart. */
export function syntheticTools(count: number): ToolDefinition[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `tool_${i}`,
    ...TEMPLATES[i % TEMPLATES.length]!(i),
  }));
}

/** The text a synthetic tool of server `server` answers: who answered, so a misrouted call is caught. */
export function callAnswer(server: number, tool: string): string {
  return `${server}/${tool}`;
}

/** The smallest arguments a validating server would accept: every required property, filled by type. */
export function sampleArguments(schema: JsonSchema): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const key of schema.required ?? []) {
    const prop = schema.properties?.[key] ?? {};
    args[key] = sampleValue(prop);
  }
  return args;
}

function sampleValue(schema: JsonSchema): unknown {
  if (schema.enum !== undefined && schema.enum.length > 0) return schema.enum[0];
  switch (schema.type) {
    case 'string':
      return schema.format === 'date' ? '2026-01-01' : 'abc';
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return sampleArguments(schema);
    default:
      return 'abc';
  }
}
