/**
 * The bench's side of its baselines in processes of their own (bench/own-process.mjs: node-llama-cpp called directly,
 * and the bare `node:http` floor), `inferno serve` as a process of its own, and the CPU time of every process on a
 * request's path — the client (this process), the server, its model hosts, the baseline — so CPU per request is summed
 * over all of them, not the one the bench happens to run in (issue 25).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { descendants } from "../testkit/process.js";
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
