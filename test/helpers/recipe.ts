// The Kong recipe of REQUIREMENTS.md, as the tests check it: the 8 tools and who may call each.

export const RECIPE_MATRIX: Readonly<Record<string, { warehouse: boolean; support: boolean }>> = {
  'list-orders': { warehouse: true, support: true },
  'get-order': { warehouse: true, support: true },
  'cancel-order': { warehouse: false, support: true },
  'list-inventory': { warehouse: true, support: true },
  'check-inventory': { warehouse: true, support: true },
  'restock-item': { warehouse: true, support: false },
  'get-customer': { warehouse: false, support: true },
  'update-customer-contact': { warehouse: false, support: true },
};

export const RECIPE_TOOLS: string[] = Object.keys(RECIPE_MATRIX);
