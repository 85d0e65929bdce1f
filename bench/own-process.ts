/**
 * The bench's side of its baselines in processes of their own (bench/own-process.mjs: node-llama-cpp called directly,
 * and the bare `node:http` floor), `inferno serve` as a process of its own, and the CPU time of every process on a
 * request's path — the client (this process), the server, its model hosts, the baseline — so CPU per request is summed
 * over all of them, not the one the bench happens to run in (issue 25).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { hostEntry } from "./hosts.js";

const CHILD = fileURLToPath(new URL("./own-process.mjs", import.meta.url));
const BIN = fileURLToPath(new URL("../bin/inferno.js", import.meta.url));
const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** What every answer of the child carries: its pid and its CPU time so far. */
export interface Reply {
  pid: number;
  cpuMs: number;
}

/** One timed generation in the child: to the end, to the first token, between tokens. */
export interface Generation extends Reply {
  ms: number;
  firstMs: number;
  gaps: number[];
  tokens: number;
}

export interface OwnProcess {
  readonly pid: number;
  /** Sends one operation (see bench/own-process.mjs) and resolves with its answer. */
  call<T extends object = object>(op: string, args?: object): Promise<Reply & T>;
  close(): Promise<void>;
}

/**
 * A fresh baseline process with llama.cpp started on `threads` threads (not timed: every runner starts its runtime
 * before its first load).
 */
export async function ownProcess(threads: number): Promise<OwnProcess> {
  const child = spawn(process.execPath, [CHILD], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting = new Map<number, { resolve: (value: never) => void; reject: (error: Error) => void }>();
  let next = 1;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the baseline process exited (${code}) before it started`)));
    child.on("message", (message: { id: number; ok: boolean; error?: string }) => {
      if (message.id === 0) return resolve();
      const pending = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.ok) pending?.resolve(message as never);
      else pending?.reject(new Error(`baseline process: ${message.error}`));
    });
  });
  child.once("exit", (code) => {
    for (const pending of waiting.values()) pending.reject(new Error(`the baseline process exited (${code})`));
    waiting.clear();
  });
  await ready;
  const call = <T extends object>(op: string, args: object = {}) =>
    new Promise<Reply & T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      child.send({ ...args, op, id });
    });
  await call("start", { threads });
  return {
    pid: child.pid as number,
    call,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.disconnect();
      await exited;
    },
  };
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

/**
 * CPU time summed over the processes on a request's path: this process (the client, exact, from `process.cpuUsage`)
 * and `others()` (read from /proc each time, so model hosts started meanwhile count too).
 */
export function pathCpu(others: () => number[]): () => number {
  return () => {
    const own = process.cpuUsage();
    return (own.user + own.system) / 1000 + others().reduce((sum, pid) => sum + processCpuMs(pid), 0);
  };
}

/** A running `inferno serve`. */
export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** Its pid and its model hosts' (the spare included). */
  pids(): number[];
  /** Stops it as a user does (Ctrl-C); resolves once it has ended. */
  stop(): Promise<void>;
}

/**
 * `inferno serve ARGS` in a process of its own, HOME in `dir` (no user configuration applies) and `env` added: the installed CLI
 * (bin/inferno.js on dist/) when `npm run build` is newer than the source, else the source under tsx. Resolves once it
 * listens (ARGS should give `--port 0`).
 */
export async function serveProcess(
  dir: string,
  serveArgs: string[],
  env: Record<string, string> = {},
): Promise<ServeProcess> {
  const built = (await hostEntry()).options.entry !== undefined;
  const entry = built ? [BIN] : ["--import", import.meta.resolve("tsx"), MAIN];
  const child = spawn(process.execPath, [...entry, "serve", ...serveArgs], {
    cwd: dir,
    env: { ...process.env, HOME: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    let found: string | undefined;
    // Read to the end (a full pipe would block the server's logging); kept only until the address shows.
    const read = (chunk: Buffer) => {
      if (found) return;
      output += chunk.toString("utf8");
      found = /listening on (http:\/\/[\w.:[\]-]+)/.exec(output)?.[1];
      if (found) resolve(found);
    };
    child.stdout?.on("data", read);
    child.stderr?.on("data", read);
    child.once("exit", (code) => reject(new Error(`inferno serve exited (${code}) before it listened: ${output}`)));
  });
  const pid = child.pid as number;
  return {
    url,
    child,
    pids: () => [pid, ...descendants(pid)],
    stop: () => {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGINT");
      });
    },
  };
}
