// Child processes of the benchmark: free ports, spawning, readiness by TCP connect, CPU time from /proc,
// and a guaranteed cleanup of every child on exit.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Child = {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** The last few KB the child wrote to stdout/stderr, for error reports. */
  output(): string;
};

const children: Child[] = [];
const OUTPUT_TAIL = 4096;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Spawns `node <args>` in `cwd`, keeping a tail of its output. */
export function startNode(name: string, args: string[], cwd: string): Child {
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => keep(Buffer.from(`spawn failed: ${err.message}\n`)));
  const started: Child = { name, process: child, pid: child.pid ?? -1, output: () => tail };
  children.push(started);
  return started;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Resolves once `port` accepts TCP connections; throws if the child exits first or time runs out. */
export async function waitForPort(child: Child, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new Error(
        `${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before listening`,
      );
    }
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${child.name} did not accept connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** Starts `node <args(port)>` on a free port and waits until it accepts connections; its output on failure. */
export async function launch(
  name: string,
  args: (port: number) => string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = startNode(name, args(port), cwd);
  try {
    await waitForPort(child, port, timeoutMs);
  } catch (err) {
    stopChild(child);
    const output = child.output().trim();
    throw new Error(`${(err as Error).message}${output ? `\n--- ${name} output ---\n${output}` : ''}`);
  }
  return { child, port };
}

export function stopChild(child: Child): void {
  if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGTERM');
}

/** Stops `child` and resolves once it has exited, with SIGKILL after `timeoutMs`. */
export async function stopAndWait(child: Child, timeoutMs = 5000): Promise<void> {
  const proc = child.process;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

export function stopAll(): void {
  for (const child of children) stopChild(child);
}

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * User + system CPU time consumed so far by process `pid` (all its threads), or by its thread `tid` alone,
 * in ms (resolution: one clock tick).
 */
export function cpuTimeMs(pid: number, tid?: number): number {
  const stat = readFileSync(
    tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`,
    'utf8',
  );
  // Fields after the parenthesised command name (which may itself contain spaces): state is field 3,
  // utime field 14 and stime field 15, i.e. indices 11 and 12 here.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** CPU time the whole machine spent busy so far (all cores, every process and the kernel), in ms. */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal …
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number);
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / TICKS_PER_SECOND;
}

const PID = /^[0-9]+$/;

export type TreeProcess = { readonly pid: number; readonly argv: readonly string[] };

/** `pid` and every process descended from it (children spawned through a shell included), from /proc. */
export function processTree(pid: number): TreeProcess[] {
  const childrenOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!PID.test(entry)) continue; // /proc/self, /proc/stat, …
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile, or not a process
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const siblings = childrenOf.get(ppid);
    if (siblings === undefined) childrenOf.set(ppid, [Number(entry)]);
    else siblings.push(Number(entry));
  }
  const tree: TreeProcess[] = [];
  for (const queue = [pid]; queue.length > 0; ) {
    const next = queue.shift()!;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${next}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
    } catch {
      continue;
    }
    tree.push({ pid: next, argv });
    queue.push(...(childrenOf.get(next) ?? []));
  }
  return tree;
}
