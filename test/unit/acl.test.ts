import { describe, expect, it } from 'vitest';
import { AclPolicy, subjectTokens } from '../../src/policy/acl.ts';

const warehouse = subjectTokens({ user: 'wendy', groups: ['warehouse-ops'] });
const support = subjectTokens({ user: 'sam', groups: ['customer-support'] });
const stranger = subjectTokens({ user: 'eve', groups: ['marketing'] });

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
      expect(recipe.decide(warehouse, 'shop', tool).allow, `warehouse-ops ${tool}`).toBe(w);
      expect(recipe.decide(support, 'shop', tool).allow, `customer-support ${tool}`).toBe(s);
      expect(recipe.decide(stranger, 'shop', tool).allow, `a group in no list: ${tool}`).toBe(false);
    }
  });

  it('a tool ACL replaces the default entirely (no merging)', () => {
    const p = new AclPolicy({
      default: { deny: ['contractors'] },
      tools: { 'up:x': { allow: ['contractors'] } },
    });
    const contractor = subjectTokens({ user: 'c', groups: ['contractors'] });
    expect(p.decide(contractor, 'up', 'x').allow).toBe(true);
    expect(p.decide(contractor, 'up', 'y').allow).toBe(false);
  });

  it('deny beats allow, and says why', () => {
    const p = new AclPolicy({ tools: { 'up:*': { allow: ['group:ops'], deny: ['user:mallory'] } } });
    const d = p.decide(subjectTokens({ user: 'mallory', groups: ['ops'] }), 'up', 'anything');
    expect(d).toEqual({ allow: false, reason: 'user:mallory is denied by the ACL of up:*' });
  });

  it('typed entries match only their kind; bare entries match any kind', () => {
    const p = new AclPolicy({ default: { allow: ['group:ops'] } });
    expect(p.decide(subjectTokens({ user: 'ops', groups: [] }), 'u', 't').allow).toBe(false);
    expect(p.decide(subjectTokens({ user: 'x', groups: ['ops'] }), 'u', 't').allow).toBe(true);
    const agents = new AclPolicy({ default: { allow: ['agent:billing-bot', 'claim:dept=sales'] } });
    expect(
      agents.decide(subjectTokens({ user: 'x', groups: [], agent: 'billing-bot' }), 'u', 't').allow,
    ).toBe(true);
    expect(
      agents.decide(subjectTokens({ user: 'x', groups: [], claims: { dept: ['sales'] } }), 'u', 't').allow,
    ).toBe(true);
    expect(
      agents.decide(subjectTokens({ user: 'x', groups: [], claims: { dept: ['ops'] } }), 'u', 't').allow,
    ).toBe(false);
  });

  it('the first matching route-wide glob is the tool ACL; no rule at all allows', () => {
    const p = new AclPolicy({
      tools: { 'files:read_*': { allow: ['readers'] }, 'files:*': { deny: ['readers'] } },
    });
    const reader = subjectTokens({ user: 'r', groups: ['readers'] });
    expect(p.decide(reader, 'files', 'read_file').allow).toBe(true);
    expect(p.decide(reader, 'files', 'write_file').allow).toBe(false);
    expect(p.decide(reader, 'other', 'x')).toEqual({ allow: true, reason: 'no ACL applies' });
    expect(new AclPolicy({}).empty).toBe(true);
  });

  it('allows() (for filtering lists) always agrees with decide()', () => {
    for (const tokens of [warehouse, support, stranger]) {
      for (const tool of ['list-orders', 'cancel-order', 'restock-item', 'get-customer', 'x']) {
        expect(recipe.allows(tokens, 'shop', tool)).toBe(recipe.decide(tokens, 'shop', tool).allow);
      }
    }
  });

  it('an empty allow list denies everyone', () => {
    const p = new AclPolicy({ default: { allow: [] } });
    expect(p.decide(warehouse, 'u', 't').allow).toBe(false);
  });
});
