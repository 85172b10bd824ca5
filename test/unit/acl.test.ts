import { describe, expect, it } from 'vitest';
import { AclPolicy, aclCaller, aclGroups } from '../../src/policy/acl.ts';

const warehouse = aclCaller({ user: 'wendy', groups: ['warehouse-ops'] });
const support = aclCaller({ user: 'sam', groups: ['customer-support'] });
const stranger = aclCaller({ user: 'eve', groups: ['marketing'] });

/** The Kong recipe of REQUIREMENTS.md: 8 REST tools, two groups. */
const recipe = new AclPolicy({
  default: { allow: ['warehouse-ops', 'customer-support'] },
  tools: {
    'shop:cancel-order': { allow: ['customer-support'] },
    'shop:restock-item': { allow: ['warehouse-ops'] },
    'shop:get-customer': { allow: ['customer-support'] },
    'shop:update-customer-contact': { allow: ['customer-support'] },
  },
});

describe('ACL (Kong semantics)', () => {
  it('reproduces the recipe matrix', () => {
    const matrix: Record<string, [boolean, boolean]> = {
      'list-orders': [true, true],
      'get-order': [true, true],
      'cancel-order': [false, true],
      'list-inventory': [true, true],
      'check-inventory': [true, true],
      'restock-item': [true, false],
      'get-customer': [false, true],
      'update-customer-contact': [false, true],
    };
    for (const [tool, [w, s]] of Object.entries(matrix)) {
      expect(recipe.decide(warehouse, 'tool', 'shop', tool).allow, `warehouse-ops ${tool}`).toBe(w);
      expect(recipe.decide(support, 'tool', 'shop', tool).allow, `customer-support ${tool}`).toBe(s);
      expect(recipe.decide(stranger, 'tool', 'shop', tool).allow, `a group in no list: ${tool}`).toBe(false);
    }
  });

  it('a tool ACL replaces the default entirely (no merging)', () => {
    const p = new AclPolicy({
      default: { deny: ['contractors'] },
      tools: { 'up:x': { allow: ['contractors'] } },
    });
    const contractor = aclCaller({ user: 'c', groups: ['contractors'] });
    expect(p.decide(contractor, 'tool', 'up', 'x').allow).toBe(true);
    expect(p.decide(contractor, 'tool', 'up', 'y').allow).toBe(false);
  });

  it('deny beats allow, and says why', () => {
    const p = new AclPolicy({ tools: { 'up:*': { allow: ['group:ops'], deny: ['user:mallory'] } } });
    const d = p.decide(aclCaller({ user: 'mallory', groups: ['ops'] }), 'tool', 'up', 'anything');
    expect(d).toEqual({ allow: false, reason: 'user:mallory is denied by the tool ACL of up:*' });
  });

  it('typed entries match only their kind; bare entries match any kind', () => {
    const p = new AclPolicy({ default: { allow: ['group:ops'] } });
    expect(p.decide(aclCaller({ user: 'ops', groups: [] }), 'tool', 'u', 't').allow).toBe(false);
    expect(p.decide(aclCaller({ user: 'x', groups: ['ops'] }), 'tool', 'u', 't').allow).toBe(true);
    const agents = new AclPolicy({ default: { allow: ['agent:billing-bot', 'claim:dept=sales'] } });
    expect(
      agents.decide(aclCaller({ user: 'x', groups: [], agent: 'billing-bot' }), 'tool', 'u', 't').allow,
    ).toBe(true);
    expect(
      agents.decide(aclCaller({ user: 'x', groups: [], claims: { dept: ['sales'] } }), 'tool', 'u', 't')
        .allow,
    ).toBe(true);
    expect(
      agents.decide(aclCaller({ user: 'x', groups: [], claims: { dept: ['ops'] } }), 'tool', 'u', 't').allow,
    ).toBe(false);
  });

  it('the first matching route-wide glob is the tool ACL; no rule at all allows', () => {
    const p = new AclPolicy({
      tools: { 'files:read_*': { allow: ['readers'] }, 'files:*': { deny: ['readers'] } },
    });
    const reader = aclCaller({ user: 'r', groups: ['readers'] });
    expect(p.decide(reader, 'tool', 'files', 'read_file').allow).toBe(true);
    expect(p.decide(reader, 'tool', 'files', 'write_file').allow).toBe(false);
    expect(p.decide(reader, 'tool', 'other', 'x')).toEqual({ allow: true, reason: 'no ACL applies' });
    expect(new AclPolicy({}).empty).toBe(true);
  });

  it('lists() (for filtering lists) always agrees with decide()', () => {
    for (const caller of [warehouse, support, stranger]) {
      for (const tool of ['list-orders', 'cancel-order', 'restock-item', 'get-customer', 'x']) {
        expect(recipe.lists(caller, 'tool', 'shop', tool, false)).toBe(
          recipe.decide(caller, 'tool', 'shop', tool).allow,
        );
      }
    }
  });

  it('an empty allow list denies everyone', () => {
    const p = new AclPolicy({ default: { allow: [] } });
    expect(p.decide(warehouse, 'tool', 'u', 't').allow).toBe(false);
  });

  it('prompts and resources have their own rules; the default covers every kind', () => {
    const p = new AclPolicy({
      default: { allow: ['staff'] },
      prompts: { 'docs:summarise': { allow: ['writers'] } },
      resources: { 'docs:file:///private/*': { deny: ['contractors'] } },
    });
    const writer = aclCaller({ user: 'w', groups: ['writers'] });
    const contractor = aclCaller({ user: 'c', groups: ['staff', 'contractors'] });
    expect(p.decide(writer, 'prompt', 'docs', 'summarise').allow).toBe(true);
    expect(p.decide(writer, 'prompt', 'docs', 'other').allow).toBe(false);
    expect(p.decide(writer, 'tool', 'docs', 'summarise').allow, 'prompt rules do not cover tools').toBe(
      false,
    );
    expect(p.decide(contractor, 'resource', 'docs', 'file:///private/pay.csv').allow).toBe(false);
    expect(p.decide(contractor, 'resource', 'docs', 'file:///public/a.md').allow).toBe(true);
    // Templates are matched by their template text.
    expect(p.decide(contractor, 'resource', 'docs', 'file:///private/{name}').allow).toBe(false);
    expect(p.governs('prompt') && p.governs('resource') && p.governs('tool')).toBe(true);
    const toolsOnly = new AclPolicy({ tools: { 'a:*': { allow: ['x'] } } });
    expect(toolsOnly.governs('prompt')).toBe(false);
    expect(toolsOnly.governs('resource')).toBe(false);
  });

  it("a tool's own entry replaces the default; a route-wide rule for it still wins", () => {
    const p = new AclPolicy({
      default: { allow: ['staff'] },
      tools: { 'orders:refund': { allow: ['finance'] } },
      toolEntries: { 'orders:cancel': { allow: ['support'] }, 'orders:refund': { allow: ['support'] } },
    });
    const supporter = aclCaller({ user: 's', groups: ['support'] });
    const staff = aclCaller({ user: 't', groups: ['staff'] });
    expect(p.decide(supporter, 'tool', 'orders', 'cancel').allow).toBe(true);
    expect(p.decide(staff, 'tool', 'orders', 'cancel').allow, 'no merging with the default').toBe(false);
    expect(p.decide(supporter, 'tool', 'orders', 'refund').allow, 'the route-wide rule wins').toBe(false);
    expect(p.decide(staff, 'tool', 'orders', 'list').allow).toBe(true);
    expect(p.decide(supporter, 'tool', 'orders', 'cancel').reason).toContain("its upstream's entry");
  });

  it('scopes: subjects first, then every required scope; the missing ones are named', () => {
    const p = new AclPolicy({
      tools: { 'orders:cancel': { allow: ['support'], scopes: ['orders:write', 'orders:read'] } },
    });
    const full = aclCaller({ user: 's', groups: ['support'], scopes: ['orders:read', 'orders:write'] });
    const partial = aclCaller({ user: 's', groups: ['support'], scopes: ['orders:read'] });
    const other = aclCaller({ user: 'o', groups: ['ops'], scopes: ['orders:read', 'orders:write'] });
    expect(p.usesScopes).toBe(true);
    expect(p.decide(full, 'tool', 'orders', 'cancel').allow).toBe(true);
    const d = p.decide(partial, 'tool', 'orders', 'cancel');
    expect(d).toMatchObject({ allow: false, missingScopes: ['orders:write'] });
    expect(d.reason).toContain('requires scope orders:write');
    const o = p.decide(other, 'tool', 'orders', 'cancel');
    expect(o.allow).toBe(false);
    expect('missingScopes' in o && o.missingScopes, 'a subject denial never asks for a step-up').toBeFalsy();
    // Listing: a step-up route keeps the tool listed for a caller lacking only a scope; a hiding one does not.
    expect(p.lists(partial, 'tool', 'orders', 'cancel', true)).toBe(true);
    expect(p.lists(partial, 'tool', 'orders', 'cancel', false)).toBe(false);
    expect(p.lists(other, 'tool', 'orders', 'cancel', true)).toBe(false);
    expect(new AclPolicy({ default: { allow: ['x'] } }).usesScopes).toBe(false);
  });

  it('tenants and configured claims are subjects', () => {
    const p = new AclPolicy({ default: { allow: ['tenant:acme', 'claim:dept=sales'] } });
    expect(p.decide(aclCaller({ user: 'a', groups: [], tenant: 'acme' }), 'tool', 'u', 't').allow).toBe(true);
    expect(p.decide(aclCaller({ user: 'a', groups: [], tenant: 'globex' }), 'tool', 'u', 't').allow).toBe(
      false,
    );
  });

  it('aclGroups names the groups of every kind of rule, typed or bare', () => {
    const g = aclGroups({
      default: { allow: ['group:a', 'user:u', 'tenant:t'] },
      prompts: { 'x:*': { deny: ['b'] } },
      resources: { 'x:*': { allow: ['claim:d=e', 'c'] } },
      toolEntries: { 'x:y': { allow: ['group:d'] } },
    });
    expect([...g].sort()).toEqual(['a', 'b', 'c', 'd']);
  });
});
