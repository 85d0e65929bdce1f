/** Model hosts seen from tests: which processes run, whose children they are, what a test server holds. */
import { readdir, readFile } from "node:fs/promises";
import { DEFAULT_HOST_ENTRY } from "../src/backends/host/host.js";
import type { CacheStats, LoadedModelInfo } from "../src/cache/types.js";
import { COMPILED_HOST_PATTERN } from "./compiled-cli.js";
import { HOST_BUNDLE_PATTERN } from "./host-bundle.js";
import type { TestServer } from "./server.js";

/** Test servers run models in process unless they ask for the default, model hosts (see server.ts). */
export const HOSTED = { isolation: "process" };

/**
 * Whether a process still runs: exists and is no zombie. A host whose parent was killed is re-parented to pid 1, which
 * in a container may never reap it: it has exited, but `kill(pid, 0)` still finds it.
 */
export async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** Those of `pids` still running once `ms` have passed, polled: returns as soon as every one has ended. */
export async function runningAfter(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left: number[] = [];
    for (const pid of pids) if (await running(pid)) left.push(pid);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * The model hosts whose parent is `pid` (Linux /proc): its child processes that run the host entry (the source's, the
 * bundle test servers start: host-bundle.ts, or a spawned CLI's compiled one: compiled-cli.ts). Other children (tsx
 * starts an esbuild service for a server run from source) are left out.
 */
export async function hostsOf(pid: number): Promise<number[]> {
  const hosts: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const argv = (await readFile(`/proc/${name}/cmdline`, "utf8")).split("\0");
      const entries = [HOST_BUNDLE_PATTERN, COMPILED_HOST_PATTERN];
      if (argv.some((arg) => arg === DEFAULT_HOST_ENTRY || entries.some((e) => e.test(arg)))) hosts.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return hosts;
}

/** The models the server's cache holds (loading and ready), as `GET /v1/cache/models` lists them. */
export async function loaded(s: TestServer): Promise<LoadedModelInfo[]> {
  return (await s.getJson<{ data: LoadedModelInfo[] }>("/v1/cache/models")).body.data;
}

/** The model `name` among them; undefined while it is not loaded. */
export async function loadedModel(s: TestServer, name: string): Promise<LoadedModelInfo | undefined> {
  return (await loaded(s)).find((m) => m.name === name);
}

export async function stats(s: TestServer): Promise<CacheStats> {
  return (await s.getJson<CacheStats>("/v1/cache/stats")).body;
}

/**
 * Resolves once every process of `pids` has llama.cpp mapped (`node-llama-cpp`'s binary in /proc/<pid>/maps), i.e. has
 * started and runs its code — a spare started a moment ago may still be booting Node on a busy machine.
 */
export async function llamaStarted(pids: number[]): Promise<void> {
  for (const pid of pids) {
    for (;;) {
      const maps = await readFile(`/proc/${pid}/maps`, "utf8").catch(() => null);
      if (maps === null || maps.includes("node-llama-cpp")) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
