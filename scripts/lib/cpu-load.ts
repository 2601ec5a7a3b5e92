/**
 * How busy the machine was while a benchmark ran, and how much of that was the benchmark: the
 * machine's busy CPU time (/proc/stat) against the CPU time of the processes measured (their
 * /proc/PID/stat, this process's own usage). Linux only; elsewhere it reports nothing.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

const TICKS_PER_S = 100; // USER_HZ, 100 on every Linux this runs on

interface Snapshot {
  /** Seconds of busy and of all CPU time, summed over cores. */
  busyS: number;
  totalS: number;
  /** CPU seconds of each watched process. */
  processS: number[];
  selfS: number;
  at: number;
  loadavg: number[];
}

export interface CpuLoad {
  cores: number;
  wallS: number;
  /** The machine's busy share of all its cores' time, 0-1. */
  busy: number;
  /** Cores' worth of CPU the watched processes and this one used, on average. */
  measuredCores: number;
  /** Cores' worth of CPU anything else used, on average. */
  otherCores: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
}

function processSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields after the command name (which may hold spaces), from field 3 on: utime and stime are fields 14 and 15.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

function snapshot(pids: (number | undefined)[]): Snapshot | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = ticks[3] + ticks[4];
    const self = process.cpuUsage();
    return {
      busyS: (total - idle) / TICKS_PER_S,
      totalS: total / TICKS_PER_S,
      processS: pids.map(processSeconds),
      selfS: (self.user + self.system) / 1e6,
      at: performance.now(),
      loadavg: loadavg(),
    };
  } catch {
    return null;
  }
}

/** Starts watching; `stop` returns the load since, or null where /proc is not there. */
export function watchCpu(pids: () => (number | undefined)[]): { stop(): CpuLoad | null } {
  const before = snapshot(pids());
  return {
    stop() {
      const after = snapshot(pids());
      if (before === null || after === null) return null;
      const wallS = (after.at - before.at) / 1000;
      const measured = after.processS.reduce((sum, s, i) => sum + s - (before.processS[i] ?? 0), 0) + after.selfS - before.selfS;
      const busyS = after.busyS - before.busyS;
      return {
        cores: cpus().length,
        wallS,
        busy: busyS / (after.totalS - before.totalS),
        measuredCores: measured / wallS,
        otherCores: Math.max(0, busyS - measured) / wallS,
        loadavgBefore: before.loadavg,
        loadavgAfter: after.loadavg,
      };
    },
  };
}

/**
 * Resolves once processes other than `pids` (and this one) have used less than `maxCores` for
 * `windows` consecutive windows of `windowMs`, or after `timeoutMs` whatever they do. Returns
 * whether it got quiet.
 */
export async function waitForQuiet(
  pids: () => (number | undefined)[],
  { maxCores, windowMs = 2000, windows = 3, timeoutMs = 300_000 }: { maxCores: number; windowMs?: number; windows?: number; timeoutMs?: number },
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let quiet = 0;
  while (performance.now() < deadline) {
    const w = watchCpu(pids);
    await new Promise((r) => setTimeout(r, windowMs));
    const load = w.stop();
    if (load === null) return true;
    quiet = load.otherCores < maxCores ? quiet + 1 : 0;
    if (quiet >= windows) return true;
  }
  return false;
}
