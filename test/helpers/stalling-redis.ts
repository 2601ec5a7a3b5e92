/**
 * Test helper (not a test file): a real TCP server, made with node:net, that plays a Redis which
 * accepts connections and does not answer.
 *
 * - `StallingRedis.start(t)`: no Redis behind it at all. It accepts every connection and reads
 *   everything, and never writes a byte: not even the handshake (HELLO) is answered.
 * - `StallingRedis.start(t, upstream)`: a relay to a real Redis that answers normally until
 *   `stall()`. From then on it still accepts connections and reads what clients send, but passes
 *   nothing on in either direction, as a Redis paused with SIGSTOP would (the kernel buffers,
 *   nobody answers). `resume()` delivers what was held, in order, and relays again.
 *
 * Either way it records the commands clients sent (parsed from RESP), so a test can tell
 * whether a lookup touched the socket at all.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Test } from 'tap';

/** Names (upper case) of the complete RESP commands in `buf`; an incomplete tail is ignored. */
export function commandNames(buf: Buffer): string[] {
  const names: string[] = [];
  let i = 0;
  const line = (): string | null => {
    const end = buf.indexOf('\r\n', i);
    if (end < 0) return null;
    const text = buf.toString('latin1', i, end);
    i = end + 2;
    return text;
  };
  while (i < buf.length) {
    const head = line();
    if (head === null || head[0] !== '*') break;
    const args: string[] = [];
    for (let k = Number(head.slice(1)); k > 0; k--) {
      const len = line();
      if (len === null || len[0] !== '$') return names;
      const n = Number(len.slice(1));
      if (i + n + 2 > buf.length) return names;
      args.push(buf.toString('latin1', i, i + n));
      i += n + 2;
    }
    if (args.length > 0) names.push(args[0].toUpperCase());
  }
  return names;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Everything this client sent, for commandNames. */
  received: Buffer[];
  toUpstream: Buffer[];
  toClient: Buffer[];
}

export class StallingRedis {
  private readonly pairs = new Set<Pair>();
  private stalled: boolean;
  /** Connections accepted since start. */
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstream: { host: string; port: number } | undefined,
  ) {
    this.stalled = upstream === undefined;
  }

  static async start(t: Test, upstreamUrl?: string): Promise<StallingRedis> {
    const upstream =
      upstreamUrl === undefined
        ? undefined
        : (() => {
            const u = new URL(upstreamUrl);
            return { host: u.hostname, port: u.port === '' ? 6379 : Number(u.port) };
          })();
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const proxy = new StallingRedis(server, address.port, upstream);
    server.on('connection', (socket) => proxy.accept(socket));
    t.teardown(() => proxy.close());
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Every command name received so far, over all connections, in order per connection. */
  commands(): string[] {
    return [...this.pairs].flatMap((p) => commandNames(Buffer.concat(p.received)));
  }

  /** How many commands named `name` (case-insensitive) were received. */
  count(name: string): number {
    const wanted = name.toUpperCase();
    return this.commands().filter((c) => c === wanted).length;
  }

  /** Stops relaying: reads on, answers nothing. */
  stall(): void {
    this.stalled = true;
  }

  /** Delivers what was held, both ways, and relays again. */
  resume(): void {
    if (this.upstream === undefined) throw new Error('nothing behind this server to resume');
    this.stalled = false;
    for (const pair of this.pairs) this.flush(pair);
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    if (this.server.listening) {
      const closed = once(this.server, 'close');
      this.server.close();
      await closed;
    }
  }

  private accept(client: Socket): void {
    this.connections++;
    const pair: Pair = { client, upstream: undefined, received: [], toUpstream: [], toClient: [] };
    this.pairs.add(pair);
    client.on('error', () => {});
    client.on('data', (chunk: Buffer) => {
      pair.received.push(chunk);
      pair.toUpstream.push(chunk);
      this.flush(pair);
    });
    if (this.upstream === undefined) return;
    const upstream = connect(this.upstream.port, this.upstream.host);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('connect', () => this.flush(pair));
    upstream.on('data', (chunk: Buffer) => {
      pair.toClient.push(chunk);
      this.flush(pair);
    });
  }

  private flush(pair: Pair): void {
    if (this.stalled || pair.upstream === undefined || pair.upstream.connecting) return;
    for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
  }
}
