// The configuration schema: the single source of truth for validation, types, defaults and the
// generated JSON Schema (config.schema.json) and reference docs.

import { z } from 'zod';
import { compileRestTool } from '../upstream/rest/tools.ts';
import { parseDuration, parseSize } from './units.ts';

const duration = (def: string) =>
  z
    .union([z.string(), z.number()])
    .default(def)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `invalid duration ${JSON.stringify(v)}: use e.g. 500ms, 30s, 5m, 1h, 7d or a number of milliseconds`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .meta({
      description: `A duration: 500ms, 30s, 5m, 1h, 7d, or a number of milliseconds. Default ${def}.`,
    });

const size = (def: string) =>
  z
    .union([z.string(), z.number()])
    .default(def)
    .transform((v, ctx) => {
      const b = parseSize(v);
      if (b === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `invalid size ${JSON.stringify(v)}: use e.g. 512KiB, 4MiB, 1GB or a number of bytes`,
        });
        return z.NEVER;
      }
      return b;
    })
    .meta({ description: `A size: 512KiB, 4MiB, 1GB, or a number of bytes. Default ${def}.` });

/** A secret value: inline, or a reference resolved at load time and never logged. */
const secret = z
  .union(
    [
      z.string(),
      z.strictObject({
        env: z.string().min(1).meta({ description: 'Name of an environment variable holding the secret.' }),
      }),
      z.strictObject({
        file: z
          .string()
          .min(1)
          .meta({ description: 'Path of a file holding the secret (trailing newline trimmed).' }),
      }),
    ],
    { error: 'a secret is a string, { env: NAME } or { file: PATH }' },
  )
  .meta({ description: 'A secret: a string, { env: NAME } or { file: PATH }. Never logged.' });

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const RESERVED_PATHS = [
  /^\/\.well-known(\/|$)/,
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/metrics$/,
  /^\/admin(\/|$)/,
];

const upstreamTls = z
  .strictObject({
    ca: z
      .string()
      .optional()
      .meta({ description: 'PEM file of the CA(s) that sign the upstream certificate.' }),
    cert: z.string().optional().meta({ description: 'PEM client certificate file for mTLS.' }),
    key: z.string().optional().meta({ description: 'PEM private key file of the client certificate.' }),
    server_name: z
      .string()
      .optional()
      .meta({ description: 'SNI / certificate name to verify, if not the URL host.' }),
  })
  .refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: 'tls.cert and tls.key go together: give both for mTLS, or neither',
  });

const prefixMode = z.enum(['always', 'on-conflict', 'never']).default('on-conflict');
const routeGlobs = z
  .array(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+:.+$|^\*$/, 'a route-wide rule names `<upstream>:<name-glob>` (globs: * and ?)'),
  )
  .optional();
const ownGlobs = z.array(z.string().min(1)).optional();

const aclRule = z.strictObject({
  allow: z
    .array(z.string())
    .optional()
    .meta({ description: 'Subjects allowed; when present, everyone else is refused.' }),
  deny: z.array(z.string()).optional().meta({ description: 'Subjects refused (deny beats allow).' }),
  scopes: z.array(z.string()).optional().meta({
    description:
      'OAuth scopes the caller must also hold (all of them). A caller lacking one is refused; with deny_response: step_up it is told which scope to ask for.',
  }),
});

const upstreamCuration = {
  tools: z
    .strictObject({
      include: ownGlobs.meta({
        description: "Expose only this upstream's tools matching one of these globs (its own names).",
      }),
      exclude: ownGlobs.meta({ description: "Hide this upstream's tools matching one of these globs." }),
      overrides: z
        .record(
          z.string(),
          z.strictObject({
            description: z
              .string()
              .optional()
              .meta({ description: "The description clients see instead of the upstream's." }),
            title: z
              .string()
              .optional()
              .meta({ description: "The title clients see instead of the upstream's." }),
            acl: aclRule.optional().meta({
              description:
                "This tool's own ACL on every route serving it: replaces the route's default ACL (a route-wide `acl.tools` rule for it still wins).",
            }),
          }),
        )
        .optional()
        .meta({
          description: 'Per tool (by its own name): what clients see instead of what the upstream says.',
        }),
    })
    .optional()
    .meta({ description: "Curation of this upstream's tools, on every route that serves it." }),
  prompts: z
    .strictObject({
      include: ownGlobs.meta({
        description: "Expose only this upstream's prompts matching one of these globs.",
      }),
      exclude: ownGlobs.meta({ description: "Hide this upstream's prompts matching one of these globs." }),
    })
    .optional()
    .meta({ description: "Curation of this upstream's prompts." }),
};

/** How the gateway identifies itself (and the caller) to an HTTP upstream. Never the caller's token. */
const upstreamAuth = z
  .union(
    [
      z.strictObject({
        static: z
          .strictObject({
            header: z
              .string()
              .default('authorization')
              .meta({ description: 'Header carrying the credential.' }),
            value: secret.meta({ description: 'The credential, e.g. "Bearer s3cret" (a secret).' }),
          })
          .meta({
            description: 'A fixed credential from config or the environment, the same for every caller.',
          }),
      }),
      z.strictObject({
        token_exchange: z
          .strictObject({
            token_endpoint: z.url().optional().meta({
              description:
                "The IdP's token endpoint; discovered from the route's OAuth issuer metadata when absent.",
            }),
            client_id: z.string().meta({ description: "The gateway's client id at the IdP." }),
            client_secret: secret.meta({ description: "The gateway's client secret at the IdP." }),
            audience: z
              .string()
              .meta({ description: 'The audience (RFC 8693 `audience`) of the token the upstream expects.' }),
            resource: z
              .url()
              .optional()
              .meta({ description: 'RFC 8707 resource indicator to send as well.' }),
            scope: z.string().optional().meta({ description: 'Scope to ask for (space separated).' }),
            callers_without_token: z.enum(['refuse', 'client_credentials']).default('refuse').meta({
              description:
                "Callers without an OAuth token (API keys, open routes): refused (default), or given the gateway's own client_credentials token for this audience — they then all act with the gateway's privileges.",
            }),
          })
          .meta({
            description:
              "RFC 8693 token exchange: the caller's token is swapped at the IdP for one scoped to this upstream (cached until it expires). The gateway's own sessions (catalogue) use the client_credentials grant.",
          }),
      }),
      z.strictObject({
        assertion: z
          .strictObject({
            audience: z
              .string()
              .optional()
              .meta({ description: "The assertion's `aud` (default: the upstream's name)." }),
            header: z.string().default('authorization').meta({
              description: 'Header carrying it: authorization (as Bearer) or another name (the raw JWT).',
            }),
            ttl: duration('5m').meta({
              description: 'Lifetime of each assertion (they are cached until near expiry).',
            }),
          })
          .meta({
            description:
              'A short-lived JWT signed by the gateway naming the caller (sub, groups, agent, tenant; iss = the gateway, aud = the upstream). Upstreams verify it with the keys at /.well-known/jwks.json.',
          }),
      }),
    ],
    { error: 'upstream auth is one of { static: … }, { token_exchange: … } or { assertion: … }' },
  )
  .optional()
  .meta({
    description:
      "How the upstream learns who is calling, without ever receiving the caller's token: a static credential, RFC 8693 token exchange, or a gateway-signed identity assertion. Default: none.",
  });

/** Fields every kind of upstream shares, declared once. */
const requestTimeout = duration('60s').meta({
  description: 'Time allowed for the upstream to answer one request (streamed answers included).',
});
const maxConcurrency = z
  .int()
  .positive()
  .default(256)
  .meta({ description: 'Requests in flight to this upstream at once; excess calls fail fast.' });
const upstreamTlsField = upstreamTls
  .optional()
  .meta({ description: 'TLS towards the upstream: custom CA, client certificate (mTLS).' });

const streamableHttpUpstream = z.strictObject({
  type: z.literal('streamable-http').meta({ description: 'An MCP server over Streamable HTTP.' }),
  url: z
    .url({ protocol: /^https?$/ })
    .meta({ description: 'The MCP endpoint of the server (http or https).' }),
  headers: z
    .record(z.string(), secret)
    .default({})
    .meta({ description: 'Static headers sent on every request (values are secrets).' }),
  connect_timeout: duration('5s').meta({ description: 'Time allowed to open a connection to the upstream.' }),
  auth: upstreamAuth,
  request_timeout: requestTimeout,
  max_concurrency: maxConcurrency,
  tls: upstreamTlsField,
  ...upstreamCuration,
});

const stdioUpstream = z.strictObject({
  type: z
    .literal('stdio')
    .meta({ description: 'An MCP server the gateway launches and supervises, over its stdin/stdout.' }),
  command: z
    .string()
    .min(1)
    .meta({ description: "The program to run: a path, or a name looked up on the gateway's PATH." }),
  args: z.array(z.string()).default([]).meta({ description: 'Its arguments.' }),
  cwd: z
    .string()
    .optional()
    .meta({ description: "Its working directory (default: the config file's directory)." }),
  env: z.record(z.string(), secret).default({}).meta({
    description:
      // biome-ignore lint/suspicious/noTemplateCurlyInString: ${PATH} is config interpolation, shown to the user
      'Its whole environment (values are secrets): it does NOT inherit the gateway\'s. Give it PATH: "${PATH}" (interpolated from the gateway\'s environment) if it starts other programs (npx, uvx).',
  }),
  mode: z.enum(['per-session', 'shared']).default('per-session').meta({
    description:
      'per-session: one process per client session (isolated state and crashes); shared: one process for all (cheaper; server→client requests reach the client of the single request in flight).',
  }),
  max_processes: z.int().positive().default(32).meta({
    description: 'Processes of this upstream alive at once (per-session mode); more sessions get -32006.',
  }),
  startup_timeout: duration('10s').meta({
    description: 'Time allowed for a new process to answer initialize.',
  }),
  request_timeout: requestTimeout,
  max_concurrency: maxConcurrency,
  ...upstreamCuration,
});

const legacySseUpstream = z.strictObject({
  type: z.literal('sse').meta({
    description: 'An MCP server over the 2024-11-05 HTTP+SSE transport (GET stream + POST endpoint).',
  }),
  url: z
    .url({ protocol: /^https?$/ })
    .meta({ description: 'The SSE endpoint of the server, e.g. http://host:3001/sse.' }),
  headers: z
    .record(z.string(), secret)
    .default({})
    .meta({ description: 'Static headers sent on the stream and every POST (values are secrets).' }),
  connect_timeout: duration('5s').meta({
    description: 'Time allowed to open the stream and receive its endpoint event.',
  }),
  auth: upstreamAuth,
  request_timeout: requestTimeout,
  max_concurrency: maxConcurrency,
  tls: upstreamTlsField,
  ...upstreamCuration,
});

const jsonObject = z.record(z.string(), z.unknown());

const restParameter = z
  .looseObject({
    name: z.string().min(1).meta({ description: 'The parameter name, as the API knows it.' }),
    in: z.enum(['path', 'query', 'header', 'cookie']).meta({ description: 'Where it goes.' }),
    required: z.boolean().optional().meta({ description: 'Whether the caller must give it (path: always).' }),
    description: z.string().optional().meta({ description: 'What it means (shown to the model).' }),
    schema: jsonObject.optional().meta({ description: 'Its JSON Schema (default: a string).' }),
    style: z
      .enum(['form', 'simple', 'spaceDelimited', 'pipeDelimited', 'deepObject'])
      .optional()
      .meta({ description: 'OpenAPI serialisation style (query default: form).' }),
    explode: z.boolean().optional().meta({ description: 'OpenAPI explode (form default: true).' }),
  })
  .meta({ description: 'An OpenAPI 3 parameter object.' });

const restAnnotations = z.strictObject({
  title: z.string().optional(),
  read_only_hint: z.boolean().optional(),
  destructive_hint: z.boolean().optional(),
  idempotent_hint: z.boolean().optional(),
  open_world_hint: z.boolean().optional(),
});

const openapiSelection = z
  .strictObject({
    tags: z.array(z.string()).optional().meta({ description: 'Tag globs.' }),
    paths: z.array(z.string()).optional().meta({ description: 'Path globs, e.g. /orders/*.' }),
    operations: z.array(z.string()).optional().meta({ description: 'operationId globs.' }),
  })
  .optional();

const restTool = z.strictObject({
  name: z.string().meta({ description: 'The tool name (1-128 of A-Z a-z 0-9 _ . -), exposed as is.' }),
  description: z.string().optional().meta({ description: 'What the tool does (default: METHOD path).' }),
  method: z
    .string()
    .regex(
      /^(get|post|put|patch|delete|head|options)$/i,
      'method is GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS',
    )
    .meta({ description: 'The HTTP method.' }),
  path: z
    .string()
    .regex(/^\//, 'a tool path starts with /')
    .meta({ description: 'Relative to base_url, with {param} placeholders for path parameters.' }),
  parameters: z.array(restParameter).default([]).meta({ description: 'OpenAPI 3 parameter objects.' }),
  request_body: jsonObject.optional().meta({
    description: "An OpenAPI requestBody (JSON content); an object body's fields become arguments.",
  }),
  responses: jsonObject.optional().meta({
    description:
      "OpenAPI responses: a 2xx JSON schema becomes the tool's outputSchema (non-objects wrapped as { result }).",
  }),
  annotations: restAnnotations.optional().meta({
    description: 'MCP tool annotations (default from the method: GET read-only, DELETE destructive).',
  }),
  acl: aclRule.optional().meta({
    description: "This tool's own ACL on every route serving it (replaces the route default).",
  }),
});

const restUpstream = z
  .strictObject({
    type: z
      .literal('rest')
      .meta({ description: 'A REST API whose operations become MCP tools (no MCP server needed).' }),
    base_url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .meta({
        description:
          "The API base URL; every request stays under it (redirects elsewhere are not followed). Default: the OpenAPI document's first server.",
      }),
    openapi: z
      .strictObject({
        spec: z.string().min(1).meta({
          description:
            'The OpenAPI document (2.0, 3.0 or 3.1; YAML or JSON): a file relative to the config, or an http(s) URL.',
        }),
        include: openapiSelection.meta({
          description: 'Only operations matching one of these (default: all).',
        }),
        exclude: openapiSelection.meta({ description: 'Operations to leave out.' }),
        overrides: z
          .record(
            z.string(),
            z.strictObject({
              name: z
                .string()
                .optional()
                .meta({ description: 'The tool name (default: the sanitised operationId).' }),
              description: z.string().optional(),
              annotations: restAnnotations.optional(),
              acl: aclRule.optional(),
            }),
          )
          .optional()
          .meta({
            description:
              'Per operation (by operationId, or "METHOD /path" without one): name, description, annotations, ACL.',
          }),
      })
      .optional()
      .meta({ description: 'Generate tools from an OpenAPI document: one per operation.' }),
    headers: z
      .record(z.string(), secret)
      .default({})
      .meta({ description: 'Static headers sent on every request (values are secrets).' }),
    query: z.record(z.string(), secret).default({}).meta({
      description: 'Static query parameters added to every request (values are secrets), e.g. an API key.',
    }),
    tools: z
      .array(restTool)
      .default([])
      .meta({ description: 'The tools, declared by hand (Kong ai-mcp-proxy shape).' }),
    connect_timeout: duration('5s').meta({ description: 'Time allowed to open a connection to the API.' }),
    auth: upstreamAuth,
    request_timeout: requestTimeout,
    max_concurrency: maxConcurrency,
    tls: upstreamTlsField,
  })
  .superRefine((u, ctx) => {
    if (u.tools.length === 0 && !u.openapi)
      ctx.addIssue({
        code: 'custom',
        path: ['tools'],
        message: 'a rest upstream needs tools, openapi, or both',
      });
    if (!u.base_url && !u.openapi)
      ctx.addIssue({
        code: 'custom',
        path: ['base_url'],
        message: 'base_url is required (unless an OpenAPI document gives it)',
      });
    const names = new Set<string>();
    u.tools.forEach((t, i) => {
      if (names.has(t.name))
        ctx.addIssue({
          code: 'custom',
          path: ['tools', i, 'name'],
          message: `duplicate tool name "${t.name}"`,
        });
      names.add(t.name);
      try {
        compileRestTool(t);
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          path: ['tools', i],
          message: err instanceof Error ? err.message : String(err),
        });
      }
    });
  });

export const upstreamSchema = z.discriminatedUnion('type', [
  streamableHttpUpstream,
  stdioUpstream,
  legacySseUpstream,
  restUpstream,
]);

const routeSchema = z.strictObject({
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'a route path starts with / and uses URL path characters only')
    .refine((p) => p === '/' || !p.endsWith('/'), 'a route path must not end with /')
    .refine(
      (p) => !RESERVED_PATHS.some((r) => r.test(p)),
      'reserved path: /.well-known/*, /healthz, /readyz, /metrics and /admin/* belong to the gateway',
    )
    .meta({ description: 'The MCP endpoint path of this route, e.g. /mcp. Legacy SSE lives at <path>/sse.' }),
  upstreams: z.array(z.string()).min(1).meta({ description: 'Names of the upstreams served on this route.' }),
  tools: z
    .strictObject({
      prefix: prefixMode.meta({
        description:
          "Prefix exposed tool names with <upstream>__: always, only on a name collision (default), or never (a collision then keeps the first upstream's tool and reports the others).",
      }),
      include: routeGlobs.meta({
        description: 'Expose only tools matching one of these `<upstream>:<tool>` globs (default: all).',
      }),
      exclude: routeGlobs.meta({
        description: 'Hide tools matching one of these `<upstream>:<tool>` globs.',
      }),
    })
    .prefault({})
    .meta({ description: "How the route exposes its upstreams' tools." }),
  prompts: z
    .strictObject({
      prefix: prefixMode.meta({
        description:
          'Prefix exposed prompt names with <upstream>__: always, on a collision (default), or never.',
      }),
      include: routeGlobs.meta({
        description: 'Expose only prompts matching one of these `<upstream>:<prompt>` globs.',
      }),
      exclude: routeGlobs.meta({
        description: 'Hide prompts matching one of these `<upstream>:<prompt>` globs.',
      }),
    })
    .prefault({})
    .meta({ description: "How the route exposes its upstreams' prompts." }),
  resources: z
    .strictObject({
      prefix: z.enum(['always', 'on-conflict']).default('on-conflict').meta({
        description:
          'Wrap resource URIs as gatehouse://<upstream>/<uri>: only when two upstreams give the same URI or template (default), or always.',
      }),
    })
    .prefault({})
    .meta({ description: "How the route exposes its upstreams' resources and resource templates." }),
  audit: z.enum(['required', 'best_effort']).default('required').meta({
    description:
      'required (default): while audit records cannot be kept (queue full and spool unavailable), new calls get 503 rather than being served unaudited. best_effort: calls are served; every record lost is counted and logged.',
  }),
  audit_payloads: z
    .strictObject({
      arguments: z
        .boolean()
        .default(true)
        .meta({ description: 'Record the arguments (params) of each call.' }),
      results: z.boolean().default(false).meta({ description: 'Record the result (or error) of each call.' }),
      redact_paths: z
        .array(
          z
            .string()
            .regex(
              /^(\$\.?)?[^.[\]]+(\[(\*|\d+)\])*(\.[^.[\]]+(\[(\*|\d+)\])*)*$/,
              'an argument path such as card.number, items[*].ssn or $.password',
            ),
        )
        .default([])
        .meta({
          description:
            'Argument paths whose values are replaced by "[redacted]" (dots, [n], [*] and * segments).',
        }),
    })
    .optional()
    .meta({
      description:
        "Record payloads in this route's audit records (off by default); audit.redact_fields applies too.",
    }),
  page_size: z.int().min(1).max(10_000).default(500).meta({
    description:
      'Items per page of tools/list, prompts/list, resources/list and resources/templates/list (cursors continue).',
  }),
  auth: z
    .strictObject({
      api_keys: z.boolean().default(false).meta({
        description:
          'Require an API key (made with `gatehouse keys create`): no key or an invalid one gets 401.',
      }),
      oauth: z
        .strictObject({
          issuer: z
            .url()
            .meta({ description: 'The authorization server (IdP) issuer; tokens must carry it in `iss`.' }),
          jwks_uri: z
            .url()
            .optional()
            .meta({ description: "Its signing keys; discovered from the issuer's metadata when absent." }),
          audience: z.string().optional().meta({
            description:
              "The route's canonical resource URI, required in `aud` (RFC 8707). Default: public_url + route path.",
          }),
          relaxed_audience: z.boolean().default(false).meta({
            description:
              'Accept tokens whatever their `aud` — only for IdPs that cannot set it; NOT conformant (logged at start).',
          }),
          subject_claim: z
            .string()
            .default('sub')
            .meta({ description: 'Claim (dotted path) naming the user.' }),
          groups_claim: z.string().default('groups').meta({
            description: 'Claim (dotted path) with the groups: an array or a space/comma separated string.',
          }),
          agent_claim: z
            .string()
            .optional()
            .meta({ description: 'Claim naming the agent (default: azp or client_id).' }),
          tenant_claim: z
            .string()
            .optional()
            .meta({ description: 'Claim (dotted path) naming the tenant, e.g. tid (Entra ID).' }),
          claims: z.array(z.string()).default([]).meta({
            description:
              'Further claims (dotted paths) whose values ACL entries may name as claim:<path>=<value>.',
          }),
          token_types: z.array(z.string()).default(['at+jwt', 'jwt']).meta({
            description:
              'Accepted JWT `typ` header values (case-insensitive, "application/" optional). A token of another type (an ID token marked id_token+jwt, a logout token) is refused.',
          }),
          require_typ: z
            .boolean()
            .default(false)
            .meta({ description: 'Refuse JWTs without a `typ` header (some IdPs omit it: Okta).' }),
          introspection: z
            .strictObject({
              endpoint: z.url().optional().meta({
                description: "RFC 7662 endpoint; discovered from the issuer's metadata when absent.",
              }),
              client_id: z.string().meta({ description: "The gateway's client id at the IdP." }),
              client_secret: secret.meta({ description: "The gateway's client secret at the IdP." }),
              tokens: z.enum(['opaque', 'all']).default('opaque').meta({
                description:
                  'opaque: introspect tokens that are not JWTs (JWTs are verified locally with the JWKS); all: introspect every token.',
              }),
              cache_ttl: duration('60s').meta({
                description:
                  "How long an introspection answer is reused (never past the token's expiry); 0 asks every time.",
              }),
            })
            .optional()
            .meta({ description: 'RFC 7662 token introspection, for opaque tokens (or all tokens).' }),
          scopes: z
            .array(z.string())
            .default([])
            .meta({ description: 'Scopes advertised in the resource metadata and the 401 challenge.' }),
          leeway: duration('30s').meta({ description: 'Clock skew tolerated on exp and nbf.' }),
        })
        .optional()
        .meta({
          description:
            'OAuth 2.1 resource server: bearer tokens from this IdP, JWTs checked with its JWKS, opaque tokens by introspection.',
        }),
      groups_required: z.boolean().default(true).meta({
        description:
          "Refuse (403) an authenticated caller in none of the groups the route's ACL names (fail closed).",
      }),
    })
    .optional()
    .meta({
      description:
        'Who may use the route. Without it the route is open (bind it to loopback, as by default).',
    }),
  acl: z
    .strictObject({
      default: aclRule.optional().meta({ description: 'The ACL of every tool without one of its own.' }),
      tools: z
        .record(
          z.string().regex(/^[A-Za-z0-9_-]+:.+$|^\*$/, 'a tool rule names `<upstream>:<tool-glob>`'),
          aclRule,
        )
        .optional()
        .meta({
          description:
            'Per-tool ACLs by `<upstream>:<tool>` glob; the first matching entry replaces the default entirely.',
        }),
      prompts: z
        .record(
          z.string().regex(/^[A-Za-z0-9_-]+:.+$|^\*$/, 'a prompt rule names `<upstream>:<prompt-glob>`'),
          aclRule,
        )
        .optional()
        .meta({
          description:
            'Per-prompt ACLs by `<upstream>:<prompt>` glob; the first matching entry replaces the default.',
        }),
      resources: z
        .record(
          z.string().regex(/^[A-Za-z0-9_-]+:.+$|^\*$/, 'a resource rule names `<upstream>:<uri-glob>`'),
          aclRule,
        )
        .optional()
        .meta({
          description:
            "Per-resource ACLs by `<upstream>:<uri>` glob (the upstream's own URIs; templates match by their template text); the first matching entry replaces the default.",
        }),
      deny_response: z.enum(['hide', 'step_up']).default('hide').meta({
        description:
          'hide: a refused call looks exactly like an unknown tool/prompt/resource. step_up: when only a required scope is missing, answer 403 insufficient_scope naming it (MCP 2025-11-25 step-up); subject denials are still hidden.',
      }),
    })
    .optional()
    .meta({
      description:
        'Per-tool access control (Kong semantics): deny beats allow; with an allow list, a caller on none of its entries is refused. Entries: user:<id>, group:<g>, agent:<a>, or a bare name matching any.',
    }),
});

export const configSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z
          .string()
          .default('127.0.0.1')
          .meta({ description: 'Address to bind. Default 127.0.0.1 (loopback only).' }),
        port: z
          .int()
          .min(0)
          .max(65535)
          .default(8080)
          .meta({ description: 'Port to bind (0 picks a free one).' }),
        tls: z
          .strictObject({
            cert: z.string().meta({ description: 'PEM certificate chain file; reloaded when it changes.' }),
            key: z.string().meta({ description: 'PEM private key file; reloaded when it changes.' }),
          })
          .optional()
          .meta({ description: 'Serve HTTPS with this certificate and key.' }),
      })
      .prefault({})
      .meta({ description: 'Where the gateway listens.' }),
    public_url: z
      .url({ protocol: /^https?$/ })
      .refine((u) => !u.endsWith('/'), 'public_url must not end with /')
      .optional()
      .meta({
        description: 'The URL clients use to reach the gateway; route resource URIs are public_url + path.',
      }),
    trust_proxy: z
      .union([z.boolean(), z.array(z.string())])
      .default(false)
      .meta({
        description:
          'Behind a reverse proxy: true trusts X-Forwarded-For/-Proto/-Host from any peer, or list the proxies (IPs/CIDRs). Used for client IPs and, without public_url, the URLs in resource metadata and challenges. Default false: forwarded headers are ignored.',
      }),
    allowed_origins: z.array(z.string()).optional().meta({
      description:
        'Origins allowed to call MCP endpoints. Default: the listen address and public_url. "*" allows any.',
    }),
    allowed_hosts: z.array(z.string()).optional().meta({
      description:
        'Host header values accepted (DNS-rebinding defence). Default: the listen host, localhost, 127.0.0.1, public_url host. "*" allows any.',
    }),
    limits: z
      .strictObject({
        max_body_bytes: size('4MiB').meta({ description: 'Largest request body accepted from a client.' }),
        max_response_bytes: size('16MiB').meta({
          description: 'Largest single message accepted from an upstream.',
        }),
      })
      .prefault({})
      .meta({ description: 'Size limits on what clients and upstreams send.' }),
    sessions: z
      .strictObject({
        idle_timeout: duration('30m').meta({
          description: 'A session with no request and no open stream for this long ends (404 afterwards).',
        }),
        max_sessions: z.int().positive().default(10_000).meta({ description: 'Live sessions per instance.' }),
        max_per_principal: z
          .int()
          .positive()
          .default(100)
          .meta({ description: 'Live sessions per principal (caller identity).' }),
      })
      .prefault({})
      .meta({ description: 'Client sessions: idle timeout and caps (over a cap, initialize gets 503).' }),
    log: z
      .strictObject({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .meta({ description: 'Minimum level of the JSON log lines on stdout.' }),
      })
      .prefault({})
      .meta({ description: 'Logging.' }),
    shutdown_timeout: duration('10s').meta({
      description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish.',
    }),
    api_keys: z
      .strictObject({
        store: z.string().default('gatehouse.db').meta({
          description:
            'Where the API keys are kept (hashes only): a SQLite file, relative to the config file, or a postgres:// URL.',
        }),
        cache_ttl: duration('10s').meta({
          description:
            'How long a key check is reused before the store is asked again (a revocation takes effect within it).',
        }),
        header: z.string().default('authorization').meta({
          description:
            'Header carrying the key: authorization (as a Bearer token) or another name (the raw key).',
        }),
      })
      .prefault({})
      .meta({ description: 'API keys for agents: where they are kept, how they are sent.' }),
    tracing: z
      .strictObject({
        enabled: z.boolean().default(false).meta({
          description:
            'Export OpenTelemetry spans (a SERVER span per MCP request, a CLIENT span per upstream call). Off: a client traceparent is still passed on to upstreams and recorded as the trace id.',
        }),
        endpoint: z
          .url({ protocol: /^https?$/ })
          .optional()
          .meta({
            description:
              'OTLP/HTTP (JSON) traces URL, e.g. http://otel-collector:4318/v1/traces. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces), else http://localhost:4318/v1/traces.',
          }),
        headers: z.record(z.string(), secret).default({}).meta({
          description:
            'Headers of the export requests (e.g. an API key of the tracing backend); secrets allowed.',
        }),
        service_name: z
          .string()
          .min(1)
          .default('gatehouse')
          .meta({ description: 'The service.name of the spans.' }),
        sample_ratio: z.number().min(0).max(1).default(1).meta({
          description:
            'Share of new traces recorded (0..1). Parent-based: a request whose client sent a traceparent follows its sampled flag.',
        }),
        include_user: z.boolean().default(false).meta({
          description: "Record the caller's subject (user.id), agent and tenant on spans.",
        }),
        export_delay: duration('5s').meta({
          description: 'Longest time a finished span waits before its batch (up to 512 spans) is exported.',
        }),
      })
      .prefault({})
      .meta({
        description: 'Distributed tracing (OpenTelemetry, OTLP/HTTP); off by default. See docs/tracing.md.',
      }),
    admin: z
      .strictObject({
        listen: z
          .strictObject({
            host: z.string().default('127.0.0.1').meta({ description: 'Address to bind.' }),
            port: z.int().min(0).max(65535).meta({ description: 'Port to bind (0 picks a free one).' }),
          })
          .optional()
          .meta({
            description:
              'Serve the admin API on its own listener (plain HTTP). Default: under /admin on the main listener.',
          }),
        oauth: z
          .strictObject({
            issuer: z.url().meta({ description: 'The IdP issuer of admin tokens.' }),
            jwks_uri: z.url().optional().meta({ description: 'Its keys; discovered when absent.' }),
            audience: z.string().meta({ description: 'Required `aud` of admin tokens.' }),
            groups_claim: z
              .string()
              .default('groups')
              .meta({ description: 'Claim (dotted path) with the groups.' }),
            groups: z
              .array(z.string())
              .min(1)
              .meta({ description: 'Members of any of these groups are administrators.' }),
          })
          .optional()
          .meta({ description: 'Administrators by OIDC group (besides API keys with the admin role).' }),
      })
      .optional()
      .meta({
        description:
          'The admin API (/admin/…: API keys, catalogue, sessions). Off without this block; callers need an API key with the admin role or a token in an admin group.',
      }),
    metrics: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: 'Collect metrics and serve them.' }),
        path: z
          .string()
          .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'a path such as /metrics')
          .refine(
            (p) => p === '/metrics' || !RESERVED_PATHS.some((r) => r.test(p)),
            'reserved path: /.well-known/*, /healthz, /readyz and /admin/* belong to the gateway',
          )
          .default('/metrics')
          .meta({ description: 'Where the Prometheus text exposition is served (GET, no credential).' }),
        listener: z.enum(['main', 'admin']).default('main').meta({
          description:
            "main: on the gateway's listener; admin: on the admin API's own listener (needs admin.listen), not on the main one.",
        }),
        latency_headers: z.boolean().default(false).meta({
          description:
            "Add X-Gatehouse-Latency (the gateway's own time, ms) and X-Gatehouse-Upstream-Latency (time waiting for the upstream, ms) to JSON answers of MCP requests (not to streams).",
        }),
        max_label_values: z.int().min(10).max(100_000).default(1000).meta({
          description:
            'Distinct values kept per label fed by callers or upstreams (tool_name, resource_uri, prompt_name, mcp_method, rpc_code, upstream_response_code); later ones are counted as "__other__".',
        }),
        max_label_length: z.int().min(16).max(1024).default(128).meta({
          description: 'Longest label value kept; longer ones are cut (and end with "…").',
        }),
        max_series: z.int().min(100).max(1_000_000).default(10_000).meta({
          description:
            'Label combinations kept for the per-request metrics; later ones are counted under the route with every other label "__other__".',
        }),
        resource_uri_prefix: z.int().min(0).max(1024).default(32).meta({
          description:
            'A resource URI that is neither listed nor matches a resource template is cut to this many characters (0: "__unmatched__") before the distinct-value cap applies.',
        }),
      })
      .prefault({})
      .meta({
        description:
          'Prometheus metrics (calls, durations, bytes, denials, upstream health, sessions, processes, audit backlog) and latency response headers. See docs/metrics.md.',
      }),
    identity: z
      .strictObject({
        issuer: z.string().optional().meta({
          description:
            'The `iss` of gateway-signed identity assertions (default: public_url, else "gatehouse").',
        }),
        signing_key: z.string().optional().meta({
          description:
            'PEM private key (EC P-256 or RSA) signing the assertions, relative to the config file. Without it a key is generated at start — give every instance the same file when scaling out.',
        }),
      })
      .prefault({})
      .meta({
        description:
          'Gateway-signed identity assertions to upstreams, and their keys at /.well-known/jwks.json.',
      }),
    audit: (() => {
      // One record per MCP request and per refusal, written off the request path (see docs/audit.md).
      const DAY = 86_400_000;
      const sinkName = z
        .string()
        .regex(NAME, 'sink names use letters, digits, _ and -')
        .optional()
        .meta({ description: 'A unique name for the sink (default: its type); spool files, stats, --sink.' });
      const retention = duration('90d')
        .refine((ms) => ms >= 7 * DAY, 'retention must be at least 7d')
        .meta({
          description:
            'How long records are kept (at least 7d; default 90d); older ones are purged periodically, the cut recorded in the chain.',
        });
      const privacy = {
        pseudonymize: z
          .strictObject({
            key: secret.meta({
              description: 'The HMAC key (a secret); the same key gives the same pseudonym.',
            }),
            fields: z
              .array(z.enum(['user_id', 'agent_identity', 'tenant', 'client_ip', 'session_id']))
              .default(['user_id'])
              .meta({ description: 'Fields replaced by their keyed HMAC-SHA256 (default: user_id).' }),
          })
          .optional()
          .meta({
            description:
              'Pseudonymise identities in this sink (keyed HMAC): queries by the raw value still work for holders of the key.',
          }),
        omit: z
          .array(
            z.enum([
              'client_ip',
              'user_agent',
              'arguments',
              'result',
              'error_message',
              'reason',
              'session_id',
              'trace_id',
            ]),
          )
          .default([])
          .meta({ description: 'Fields never written to this sink (stored as null).' }),
      };
      const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;
      const sink = z
        .discriminatedUnion('type', [
          z.strictObject({
            type: z
              .literal('sqlite')
              .meta({ description: 'SQLite (built into Node, WAL mode): the default.' }),
            name: sinkName,
            path: z.string().min(1).default('gatehouse-audit.db').meta({
              description: 'The database file, relative to the config file.',
            }),
            retention,
            ...privacy,
          }),
          z.strictObject({
            type: z
              .literal('postgres')
              .meta({ description: 'PostgreSQL; tables created and migrated by the gateway.' }),
            name: sinkName,
            url: secret.meta({
              description: 'postgres:// connection URL (a secret: it may hold a password).',
            }),
            schema: z
              .string()
              .regex(IDENT, 'a lower-case SQL identifier')
              .optional()
              .meta({ description: 'Schema of the tables (created when absent); default: the search_path.' }),
            table: z
              .string()
              .regex(IDENT, 'a lower-case SQL identifier')
              .default('gatehouse_audit')
              .meta({ description: 'Table of the records (its checkpoints go to <table>_checkpoints).' }),
            retention,
            ...privacy,
          }),
          z.strictObject({
            type: z
              .literal('jsonl')
              .meta({ description: 'JSON Lines files, rotated by size (for log shippers).' }),
            name: sinkName,
            path: z.string().min(1).default('gatehouse-audit.jsonl').meta({
              description: 'The current file, relative to the config file; rotated ones get .1, .2, …',
            }),
            max_size: size('100MiB').meta({ description: 'Rotate the file when it reaches this size.' }),
            keep: z.int().min(1).default(10).meta({ description: 'Rotated files kept.' }),
            retention,
            ...privacy,
          }),
          z.strictObject({
            type: z.literal('stdout').meta({
              description: 'One JSON line per record on stdout ("type":"gatehouse.audit"), beside the logs.',
            }),
            name: sinkName,
            ...privacy,
          }),
        ])
        .transform((s) => ({ ...s, name: s.name ?? s.type }));
      return z
        .strictObject({
          enabled: z.boolean().default(true).meta({ description: 'Audit every MCP request (default true).' }),
          sinks: z
            .array(sink)
            .min(1)
            .prefault([{ type: 'sqlite' }])
            .meta({
              description: 'Where records go, several at once (default: one SQLite file next to the config).',
            }),
          queue_size: z.int().min(1).default(10_000).meta({
            description: 'Records held in memory per sink before they overflow to the spool.',
          }),
          batch_size: z.int().min(1).max(1000).default(500).meta({
            description: 'Records written per batch (one transaction).',
          }),
          flush_interval: duration('50ms').meta({
            description: 'How long records may wait to be batched before they are written.',
          }),
          spool: z
            .strictObject({
              dir: z.string().min(1).default('gatehouse-audit-spool').meta({
                description: 'Directory of the spool files (one per sink), relative to the config file.',
              }),
              max_size: size('1GiB').meta({
                description:
                  'Largest spool file per sink; 0 disables spooling (records then wait in memory only).',
              }),
            })
            .prefault({})
            .meta({
              description:
                'Local disk where records wait, in order, while a sink is down or its queue is full; replayed when it is back.',
            }),
          purge_interval: duration('1h').meta({ description: 'How often the retention purge runs.' }),
          redact_fields: z
            .array(z.string().min(1))
            .default([
              'password',
              'passwd',
              'secret',
              'token',
              'access_token',
              'refresh_token',
              'id_token',
              'client_secret',
              'api_key',
              'apikey',
              'authorization',
              'cookie',
            ])
            .meta({
              description:
                'Object keys (case-insensitive) whose values are replaced by "[redacted]" anywhere in audited payloads.',
            }),
          max_payload_bytes: size('64KiB').meta({
            description: 'Audited arguments/results larger than this are replaced by a truncation marker.',
          }),
        })
        .prefault({})
        .superRefine((a, ctx) => {
          const seen = new Set<string>();
          a.sinks.forEach((s, i) => {
            if (seen.has(s.name))
              ctx.addIssue({
                code: 'custom',
                path: ['sinks', i, 'name'],
                message: `duplicate audit sink name "${s.name}": give each sink of this type a name`,
              });
            seen.add(s.name);
          });
        })
        .meta({
          description:
            'The audit log: one tamper-evident record per MCP request (and per refusal), in SQLite, PostgreSQL, JSON Lines files and/or stdout. On by default (SQLite next to the config).',
        });
    })(),
    health: z
      .strictObject({
        interval: duration('30s').meta({
          description:
            "How often each upstream's catalogue is refreshed — the MCP-aware probe (initialize + lists); 0 disables (list_changed and failures still refresh).",
        }),
        grace_period: duration('60s').meta({
          description:
            "How long a down upstream's tools, prompts and resources stay listed before they disappear (clients get list_changed).",
        }),
      })
      .prefault({})
      .meta({ description: 'MCP-aware upstream health probes (their status shows on /readyz).' }),
    upstreams: z
      .record(z.string().regex(NAME, 'upstream names use letters, digits, _ and -'), upstreamSchema)
      .meta({ description: 'The MCP servers behind the gateway, by name.' }),
    routes: z
      .array(routeSchema)
      .min(1)
      .meta({ description: 'MCP endpoints served by the gateway, each in front of its upstreams.' }),
  })
  // Cross-references are checked even when other fields are invalid, so `validate` lists every problem at
  // once; the value may then be partly unparsed, hence the defensive reads.
  .superRefine(
    (c, ctx) => {
      const routes: unknown = c.routes;
      const upstreams: unknown = c.upstreams;
      metricsProblems(c, ctx);
      if (!Array.isArray(routes)) return;
      const known = typeof upstreams === 'object' && upstreams !== null ? Object.keys(upstreams) : [];
      const seen = new Set<string>();
      routes.forEach((r: { path?: unknown; upstreams?: unknown; acl?: unknown; auth?: unknown }, i) => {
        if (typeof r !== 'object' || r === null) return;
        const acl = r.acl as { deny_response?: unknown } | undefined;
        const oauth = (r.auth as { oauth?: unknown } | undefined)?.oauth;
        if (acl?.deny_response === 'step_up' && !oauth) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', i, 'acl', 'deny_response'],
            message: 'step_up challenges for OAuth scopes: the route needs auth.oauth',
          });
        }
        if (!oauth && JSON.stringify(r.acl ?? {}).includes('"scopes"')) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', i, 'acl'],
            message:
              'an ACL rule requires OAuth scopes but the route has no auth.oauth: no caller could ever hold them',
          });
        }
        if (typeof r.path === 'string') {
          if (seen.has(r.path)) {
            ctx.addIssue({
              code: 'custom',
              path: ['routes', i, 'path'],
              message: `duplicate route path ${r.path}`,
            });
          }
          seen.add(r.path);
        }
        if (!Array.isArray(r.upstreams)) return;
        r.upstreams.forEach((u: unknown, j) => {
          if (typeof u === 'string' && !known.includes(u)) {
            ctx.addIssue({
              code: 'custom',
              path: ['routes', i, 'upstreams', j],
              message: `unknown upstream "${u}"; defined upstreams: ${known.join(', ') || '(none)'}`,
            });
          }
        });
      });
    },
    { when: () => true },
  );

/** metrics: its path must not be a route's, and the admin listener must exist to serve it there. */
function metricsProblems(c: unknown, ctx: z.RefinementCtx): void {
  const { metrics, admin, routes } = c as { metrics?: unknown; admin?: unknown; routes?: unknown };
  const m = metrics as { enabled?: unknown; path?: unknown; listener?: unknown } | undefined;
  if (!m || m.enabled === false) return;
  if (m.listener === 'admin' && !(admin as { listen?: unknown } | undefined)?.listen) {
    ctx.addIssue({
      code: 'custom',
      path: ['metrics', 'listener'],
      message: 'metrics on the admin listener need admin.listen (the admin API on its own listener)',
    });
  }
  if (m.listener !== 'admin' && typeof m.path === 'string' && Array.isArray(routes)) {
    const taken = routes.some(
      (r: { path?: unknown }) =>
        typeof r?.path === 'string' &&
        [r.path, `${r.path === '/' ? '' : r.path}/sse`, `${r.path === '/' ? '' : r.path}/messages`].includes(
          m.path as string,
        ),
    );
    if (taken)
      ctx.addIssue({
        code: 'custom',
        path: ['metrics', 'path'],
        message: `metrics.path ${m.path} is an MCP endpoint of a route; choose another path`,
      });
  }
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type RouteConfig = Config['routes'][number];
export type SecretRef = z.output<typeof secret>;

/** The JSON Schema editors use (the input side: what a person writes). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
