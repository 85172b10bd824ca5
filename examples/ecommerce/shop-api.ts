// The Kong recipe's three REST APIs — Orders, Inventory, Customers — as one small local service
// (node:http, in-memory data that resets on start). Real HTTP, real status codes, JSON everywhere.
//
//   GET  /orders?status&date                      GET  /inventory?category&low_stock
//   GET  /orders/{orderId}                        GET  /inventory/{sku}
//   POST /orders/{orderId}/cancel                 POST /inventory/{sku}/restock?quantity
//   GET  /customers/{customerId}                  PUT  /customers/{customerId}/contact?email&phone
//
// Run alone: node examples/ecommerce/shop-api.ts [--port 3100]

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

interface Order {
  id: string;
  customerId: string;
  status: 'pending' | 'shipped' | 'delivered' | 'cancelled';
  date: string;
  items: { sku: string; quantity: number; unitPrice: number }[];
  total: number;
}

interface Item {
  sku: string;
  name: string;
  category: string;
  quantity: number;
  reorderLevel: number;
  warehouse: string;
}

interface Customer {
  id: string;
  name: string;
  email: string;
  phone: string;
  tier: 'standard' | 'gold';
  since: string;
}

function seed() {
  const inventory: Item[] = [
    {
      sku: 'KB-101',
      name: 'Mechanical keyboard',
      category: 'peripherals',
      quantity: 42,
      reorderLevel: 10,
      warehouse: 'Lyon',
    },
    {
      sku: 'MS-220',
      name: 'Wireless mouse',
      category: 'peripherals',
      quantity: 6,
      reorderLevel: 15,
      warehouse: 'Lyon',
    },
    {
      sku: 'MN-270',
      name: '27" monitor',
      category: 'displays',
      quantity: 12,
      reorderLevel: 5,
      warehouse: 'Rotterdam',
    },
    {
      sku: 'DK-010',
      name: 'USB-C dock',
      category: 'accessories',
      quantity: 0,
      reorderLevel: 8,
      warehouse: 'Rotterdam',
    },
    {
      sku: 'HS-550',
      name: 'Noise-cancelling headset',
      category: 'audio',
      quantity: 19,
      reorderLevel: 6,
      warehouse: 'Lyon',
    },
    {
      sku: 'CB-003',
      name: 'USB-C cable 2 m',
      category: 'accessories',
      quantity: 310,
      reorderLevel: 100,
      warehouse: 'Rotterdam',
    },
  ];
  const customers: Customer[] = [
    {
      id: 'C-1001',
      name: 'Amélie Laurent',
      email: 'amelie.laurent@example.com',
      phone: '+33 4 72 10 20 30',
      tier: 'gold',
      since: '2021-03-14',
    },
    {
      id: 'C-1002',
      name: 'Jonas Verbeek',
      email: 'jonas.verbeek@example.nl',
      phone: '+31 10 555 0199',
      tier: 'standard',
      since: '2023-09-02',
    },
    {
      id: 'C-1003',
      name: 'Priya Raman',
      email: 'priya.raman@example.co.uk',
      phone: '+44 20 7946 0958',
      tier: 'standard',
      since: '2024-11-20',
    },
  ];
  const price = (sku: string) =>
    ({ 'KB-101': 89, 'MS-220': 29, 'MN-270': 249, 'DK-010': 119, 'HS-550': 179, 'CB-003': 12 })[sku] ?? 0;
  const order = (
    id: string,
    customerId: string,
    status: Order['status'],
    date: string,
    items: [string, number][],
  ): Order => {
    const lines = items.map(([sku, quantity]) => ({ sku, quantity, unitPrice: price(sku) }));
    return {
      id,
      customerId,
      status,
      date,
      items: lines,
      total: lines.reduce((s, l) => s + l.quantity * l.unitPrice, 0),
    };
  };
  const orders: Order[] = [
    order('O-5001', 'C-1001', 'delivered', '2026-11-02', [
      ['MN-270', 2],
      ['CB-003', 2],
    ]),
    order('O-5002', 'C-1002', 'shipped', '2026-11-18', [['KB-101', 1]]),
    order('O-5003', 'C-1003', 'pending', '2026-11-21', [
      ['HS-550', 1],
      ['MS-220', 1],
    ]),
    order('O-5004', 'C-1001', 'pending', '2026-11-21', [['DK-010', 3]]),
    order('O-5005', 'C-1002', 'cancelled', '2026-10-30', [['CB-003', 10]]),
  ];
  return { inventory, customers, orders };
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function route(db: ReturnType<typeof seed>, method: string, url: URL): [number, unknown] {
  const q = url.searchParams;
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const [root, id, action] = parts;
  const find = <T extends { id?: string; sku?: string }>(list: T[], key: string, what: string): T => {
    const hit = list.find((x) => (x.id ?? x.sku) === key);
    if (!hit) throw new HttpError(404, `${what} ${key} not found`);
    return hit;
  };
  if (root === 'orders') {
    if (method === 'GET' && parts.length === 1) {
      return [
        200,
        db.orders.filter(
          (o) =>
            (!q.get('status') || o.status === q.get('status')) &&
            (!q.get('date') || o.date === q.get('date')),
        ),
      ];
    }
    if (method === 'GET' && parts.length === 2) return [200, find(db.orders, id!, 'order')];
    if (method === 'POST' && action === 'cancel' && parts.length === 3) {
      const o = find(db.orders, id!, 'order');
      if (o.status === 'shipped' || o.status === 'delivered')
        throw new HttpError(409, `order ${o.id} is already ${o.status}; it cannot be cancelled`);
      o.status = 'cancelled';
      return [200, o];
    }
  }
  if (root === 'inventory') {
    if (method === 'GET' && parts.length === 1) {
      const low = q.get('low_stock') === 'true';
      return [
        200,
        db.inventory.filter(
          (i) =>
            (!q.get('category') || i.category === q.get('category')) &&
            (!low || i.quantity <= i.reorderLevel),
        ),
      ];
    }
    if (method === 'GET' && parts.length === 2) return [200, find(db.inventory, id!, 'item')];
    if (method === 'POST' && action === 'restock' && parts.length === 3) {
      const item = find(db.inventory, id!, 'item');
      const n = Number(q.get('quantity'));
      if (!Number.isInteger(n) || n < 1) throw new HttpError(400, 'quantity must be a positive integer');
      item.quantity += n;
      return [200, item];
    }
  }
  if (root === 'customers') {
    if (method === 'GET' && parts.length === 2) return [200, find(db.customers, id!, 'customer')];
    if (method === 'PUT' && action === 'contact' && parts.length === 3) {
      const c = find(db.customers, id!, 'customer');
      const email = q.get('email');
      const phone = q.get('phone');
      if (!email && !phone) throw new HttpError(400, 'give email, phone or both');
      if (email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
        throw new HttpError(400, `invalid email ${email}`);
      if (email) c.email = email;
      if (phone) c.phone = phone;
      return [200, c];
    }
  }
  throw new HttpError(404, `no route ${method} ${url.pathname}`);
}

export async function startShopApi(
  port = 0,
  host = '127.0.0.1',
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const db = seed();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      let status: number;
      let body: unknown;
      try {
        [status, body] = route(db, req.method ?? 'GET', new URL(req.url ?? '/', 'http://shop'));
      } catch (err) {
        status = err instanceof HttpError ? err.status : 500;
        body = { error: err instanceof Error ? err.message : String(err) };
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const api = await startShopApi(i > 0 ? Number(process.argv[i + 1]) : 3100);
  console.log(`shop API on ${api.url}`);
}
