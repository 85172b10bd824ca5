// A TCP relay to the test PostgreSQL (127.0.0.1:5432) that a test can cut — every connection closed,
// the port refused — and restore on the same port: a database outage without stopping the database.

import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export /** A TCP relay to PostgreSQL that a test can cut (closing every connection) and restore on the same port. */
class PgRelay {
  port = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  async start(port = 0): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(5432, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
