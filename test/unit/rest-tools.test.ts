import { describe, expect, it } from 'vitest';
import { buildRequest, compileRestTool, RestToolError } from '../../src/upstream/rest/tools.ts';

const restock = compileRestTool({
  name: 'restock-item',
  description: 'Restock an item',
  method: 'post',
  path: '/inventory/{sku}/restock',
  parameters: [
    { name: 'sku', in: 'path', schema: { type: 'string' } },
    { name: 'quantity', in: 'query', required: true, schema: { type: 'integer', minimum: 1 } },
    { name: 'X-Request-Id', in: 'header', schema: { type: 'string' } },
    { name: 'session', in: 'cookie', schema: { type: 'string' } },
  ],
  request_body: {
    required: true,
    content: {
      'application/json': {
        schema: {
          type: 'object',
          required: ['note'],
          properties: { note: { type: 'string' }, sku: { type: 'string' } },
        },
      },
    },
  },
  responses: {
    '200': { content: { 'application/json': { schema: { type: 'array', items: { type: 'object' } } } } },
  },
});

describe('REST tools', () => {
  it('builds the input schema: parameters, flattened body, collisions renamed body_<name>', () => {
    expect(restock.tool.inputSchema).toEqual({
      type: 'object',
      properties: {
        sku: { type: 'string' },
        quantity: { type: 'integer', minimum: 1 },
        'X-Request-Id': { type: 'string' },
        session: { type: 'string' },
        note: { type: 'string' },
        body_sku: { type: 'string' },
      },
      required: ['sku', 'quantity', 'note'],
      additionalProperties: false,
    });
    // A non-object 2xx schema is wrapped: MCP output schemas are objects.
    expect(restock.wrapsResult).toBe(true);
    expect(restock.tool.outputSchema).toEqual({
      type: 'object',
      properties: { result: { type: 'array', items: { type: 'object' } } },
      required: ['result'],
    });
    expect(restock.tool.annotations).toBeUndefined();
  });

  it('validates arguments and names the argument and the reason', () => {
    expect(restock.check({ sku: 'A1', quantity: 3, note: 'n' })).toBeUndefined();
    expect(restock.check({ sku: 'A1', note: 'n' })).toBe('missing required argument "quantity"');
    expect(restock.check({ sku: 'A1', quantity: 0, note: 'n' })).toBe('argument "quantity" must be >= 1');
    expect(restock.check({ sku: 'A1', quantity: 'x', note: 'n' })).toBe(
      'argument "quantity" must be integer',
    );
    expect(restock.check({ sku: 'A1', quantity: 1, note: 'n', extra: 1 })).toContain(
      'unknown argument "extra"',
    );
  });

  it('builds the request: every location, the body, the base path', () => {
    const r = buildRequest(
      restock,
      { sku: 'A 1', quantity: 3, 'X-Request-Id': 'r1', session: 's=1', note: 'hi', body_sku: 'B' },
      '/api',
    );
    expect(r).toEqual({
      method: 'POST',
      path: '/api/inventory/A%201/restock?quantity=3',
      headers: { 'x-request-id': 'r1', cookie: 'session=s%3D1', 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'hi', sku: 'B' }),
    });
  });

  it('a path argument can never change the route', () => {
    const get = compileRestTool({
      name: 'get-order',
      method: 'GET',
      path: '/orders/{id}',
      parameters: [{ name: 'id', in: 'path' }],
    });
    // Encoded, `../admin` would reach an API that decodes %2F before routing (or a proxy that does): refused.
    expect(() => buildRequest(get, { id: '../admin' }, '')).toThrow(RestToolError);
    expect(() => buildRequest(get, { id: '%2e%2e%2fadmin' }, '')).toThrow(RestToolError);
    expect(buildRequest(get, { id: 'a/b' }, '').path).toBe('/orders/a%2Fb');
    expect(buildRequest(get, { id: '%2eadmin' }, '').path).toBe('/orders/%252eadmin');
    expect(buildRequest(get, { id: 'a?b#c' }, '').path).toBe('/orders/a%3Fb%23c');
    expect(() => buildRequest(get, { id: '..' }, '')).toThrow(RestToolError);
    expect(() => buildRequest(get, { id: '.' }, '')).toThrow(RestToolError);
    expect(get.tool.annotations).toEqual({ readOnlyHint: true, idempotentHint: true });
  });

  it('query styles: form exploded and not, deepObject, pipe-delimited', () => {
    const t = compileRestTool({
      name: 'search',
      method: 'GET',
      path: '/s',
      parameters: [
        { name: 'tag', in: 'query', schema: { type: 'array', items: { type: 'string' } } },
        { name: 'ids', in: 'query', explode: false, schema: { type: 'array' } },
        { name: 'filter', in: 'query', style: 'deepObject', schema: { type: 'object' } },
        { name: 'p', in: 'query', style: 'pipeDelimited', explode: false, schema: { type: 'array' } },
      ],
    });
    const r = buildRequest(
      t,
      { tag: ['a', 'b c'], ids: [1, 2], filter: { status: 'open' }, p: ['x', 'y'] },
      '',
    );
    expect(r.path).toBe('/s?tag=a&tag=b%20c&ids=1%2C2&filter%5Bstatus%5D=open&p=x%7Cy');
  });

  it('header values cannot split the request', () => {
    const t = compileRestTool({
      name: 'h',
      method: 'GET',
      path: '/h',
      parameters: [{ name: 'X-A', in: 'header' }],
    });
    expect(() => buildRequest(t, { 'X-A': 'a\r\nX-Evil: 1' }, '')).toThrow(/line breaks/);
  });

  it('refuses broken definitions with the tool name and the problem', () => {
    expect(() => compileRestTool({ name: 'x', method: 'GET', path: '/a/{id}', parameters: [] })).toThrow(
      'tool "x": the path names {id} but no path parameter "id" is declared',
    );
    expect(() => compileRestTool({ name: 'bad name', method: 'GET', path: '/' })).toThrow(/1-128/);
    expect(() =>
      compileRestTool({
        name: 'x',
        method: 'GET',
        path: '/',
        parameters: [{ name: 'Authorization', in: 'header' }],
      }),
    ).toThrow(/not allowed/);
    expect(() =>
      compileRestTool({
        name: 'x',
        method: 'POST',
        path: '/',
        request_body: { content: { 'application/xml': { schema: {} } } },
      }),
    ).toThrow(/only JSON request bodies/);
  });

  it('same name in two locations: the later becomes <in>_<name>; a non-object body is `body`', () => {
    const t = compileRestTool({
      name: 'x',
      method: 'PUT',
      path: '/a/{id}',
      parameters: [
        { name: 'id', in: 'query' },
        { name: 'id', in: 'path' },
      ],
      request_body: {
        content: { 'application/json': { schema: { type: 'array', items: { type: 'integer' } } } },
      },
    });
    expect(Object.keys((t.tool.inputSchema as { properties: object }).properties)).toEqual([
      'id',
      'query_id',
      'body',
    ]);
    const r = buildRequest(t, { id: 'p', query_id: 'q', body: [1, 2] }, '');
    expect(r.path).toBe('/a/p?id=q');
    expect(r.body).toBe('[1,2]');
    expect(t.tool.annotations).toEqual({ idempotentHint: true });
  });

  it('null is a value in a JSON body (omitted elsewhere); the body keeps its JSON media type', () => {
    const t = compileRestTool({
      name: 'x',
      method: 'PATCH',
      path: '/a/{id}',
      parameters: [
        { name: 'id', in: 'path' },
        { name: 'q', in: 'query', schema: { type: ['string', 'null'] } },
      ],
      request_body: {
        content: {
          'application/merge-patch+json': {
            schema: { type: 'object', properties: { note: { type: ['string', 'null'] } } },
          },
        },
      },
    });
    expect(t.check({ id: '1', q: null, note: null })).toBeUndefined();
    expect(buildRequest(t, { id: '1', q: null, note: null }, '')).toEqual({
      method: 'PATCH',
      path: '/a/1',
      headers: { 'content-type': 'application/merge-patch+json' },
      body: '{"note":null}',
    });
  });

  it('checks a structured result against the output schema (wrapped or not)', () => {
    expect(restock.checkOutput({ result: [{}, {}] })).toBeUndefined();
    expect(restock.checkOutput({ result: { id: 1 } })).toBe('/result must be array');
    const obj = compileRestTool({
      name: 'y',
      method: 'GET',
      path: '/y',
      responses: {
        '200': {
          content: {
            'application/json': {
              schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
            },
          },
        },
      },
    });
    expect(obj.checkOutput({ id: 1, extra: true })).toBeUndefined();
    expect(obj.checkOutput({ id: 'a' })).toBe('/id must be integer');
    expect(obj.checkOutput({})).toBe("(the result) must have required property 'id'");
    expect(compileRestTool({ name: 'z', method: 'GET', path: '/z' }).checkOutput('anything')).toBeUndefined();
  });
});
