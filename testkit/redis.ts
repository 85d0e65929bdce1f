/**
 * A real `redis-server` for the fleet tests: started on a free loopback port without persistence (`--save ""
 * --appendonly no`), so a restart comes back empty, and stopped when the test ends. Where no `redis-server` is
 * installed, `REDIS_SKIP` holds the reason and the fleet tests pass it as `skip` (node's runner prints it).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";
import { freePort, listening } from "./net.js";
import { tempDir } from "./tmp.js";

/** The binary: `$INFERNO_TEST_REDIS_SERVER` or `redis-server` on the PATH. */
const BINARY = process.env.INFERNO_TEST_REDIS_SERVER ?? "redis-server";

function findRedis(): string | undefined {
  const probe = spawnSync(BINARY, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return `${BINARY} is not installed (Debian: apt-get install redis-server)`;
  const version = /v=(\d+)\.(\d+)/.exec(probe.stdout);
  if (version && Number(version[1]) < 7) return `${BINARY} is ${version[0]}: the fleet needs Redis 7.0 or newer`;
  return undefined;
}

/** Why the fleet tests cannot run here, or undefined when they can. */
export const REDIS_SKIP: string | undefined = findRedis();

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (with `user:password@` when started with a password). */
  readonly url: string;
  /** Sends a signal to the running server (`SIGSTOP`, `SIGCONT`, …). */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL, and wait until the process is gone. */
  kill(): Promise<void>;
  /** Starts a server again on the same port: empty, as nothing was persisted. */
  restart(): Promise<void>;
  /** Stops the server (idempotent; also run when the test ends). */
  stop(): Promise<void>;
}

/** Starts `redis-server` on a free port; it stops when the test ends. */
export async function startRedis(
  t: TestContext,
  options: {
    password?: string;
    /**
     * Cluster mode, one node serving every slot: Redis then refuses a script that touches keys of two slots, as a
     * real cluster does.
     */
    cluster?: boolean;
  } = {},
): Promise<RedisServer> {
  const port = await freePort();
  const dir = options.cluster ? await tempDir(t, "inferno-redis-") : undefined;
  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  const start = async (): Promise<void> => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    if (options.password) args.push("--requirepass", options.password);
    if (dir) args.push("--cluster-enabled", "yes", "--dir", dir, "--cluster-config-file", "nodes.conf");
    const proc = spawn(BINARY, args, { stdio: "ignore" });
    child = proc;
    exited = once(proc, "exit");
    await listening(proc, port, "redis-server");
    if (dir) await serveEverySlot(port);
  };
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGCONT");
    proc.kill(signal);
    await exited;
  };
  await start();
  const server: RedisServer = {
    port,
    url: options.password ? `redis://default:${options.password}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    signal: (signal) => void child?.kill(signal),
    kill: () => stopWith("SIGKILL"),
    restart: start,
    stop: () => stopWith("SIGKILL"),
  };
  t.after(() => server.stop());
  return server;
}

/** A fresh cluster-mode node takes every slot (`CLUSTER ADDSLOTSRANGE`, Redis 7.0) and waits until the cluster is ok. */
async function serveEverySlot(port: number): Promise<void> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  try {
    await client.connect();
    await client.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    while (!/cluster_state:ok/.test(String(await client.call("CLUSTER", "INFO")))) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    client.disconnect();
  }
}
