/**
 * The real `inferno` process (`node …/src/cli/main.js …`, the source compiled to JavaScript: compiled-cli.ts), for
 * tests that need signals, exit codes and a fresh process (restart). Output is collected; `waitForLine` waits for a
 * line matching a pattern.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import type { TestContext } from "node:test";
import { compiledCli } from "./compiled-cli.js";

export interface InfernoProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern` (rejects if the process exits first). */
  waitForLine(pattern: RegExp): Promise<RegExpMatchArray>;
  /** Sends a signal and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Sends a signal to the process group, as a terminal's Ctrl-C does (the process must be started with `group`), and
   * resolves with the exit code and signal.
   */
  signalGroup(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnInferno(
  t: TestContext,
  args: string[],
  options: { cwd: string; env: Record<string, string>; group?: boolean },
): InfernoProcess {
  const child = spawn(process.execPath, [compiledCli(), ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
    // A process group of its own, like a command started from a shell: `signalGroup` signals all of it.
    detached: options.group === true,
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const ended = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const exited = ended.then(([code]) => code);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForLine(pattern) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = out
            .split("\n")
            .map((line) => pattern.exec(line))
            .find((m) => m !== null);
          if (!match) return false;
          child.stdout.off("data", check);
          resolve(match);
          return true;
        };
        if (check()) return;
        child.stdout.on("data", check);
        void exited.then((code) => {
          if (!check()) reject(new Error(`inferno exited (${code}) before printing ${pattern}; stderr:\n${err}`));
        });
      });
    },
    async signalGroup(signal) {
      if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), signal);
      const [code, bySignal] = await ended;
      return { code, signal: bySignal };
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits up to `withinMs` for the process to end; whether it has. */
export async function gone(pid: number, withinMs = 2000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
  return !alive(pid);
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`: 100 on Linux). */
const TICKS_PER_S = 100;

/**
 * CPU time (ms) a process has used so far, every thread, from /proc/PID/stat (utime + stime, in clock ticks: 10 ms a
 * tick, so summed over many requests, never read for one); 0 once it has ended.
 */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** The pids of a process's children and their children (scanning /proc: this kernel has no `children` file). */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      // ended while scanning
    }
  }
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const child of parents.get(parent) ?? []) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/** Resident memory (VmRSS) of a process, in bytes. */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
}
