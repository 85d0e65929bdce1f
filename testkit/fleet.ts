/**
 * A fleet of real `inferno serve` processes on loopback, joined through one `redis-server` (testkit/redis.ts): each node
 * has its own temp directory, models folder and state file, the same fleet name and secret, and short heartbeats so
 * the tests wait little.
 *
 *   const redis = await startRedis(t);
 *   const fleet = await startFleet(t, redis.url, [{ "a.gguf": { seed: 1 } }, { "a.gguf": { seed: 1 } }]);
 *   await fleet.settle();
 *   await ok(complete(fleet.nodes[0], "a.gguf"));
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { CacheStats } from "../src/cache/types.js";
import type { TinyLlamaOptions } from "../src/models/gguf-writer.js";
import { type InfernoProcess, spawnInferno } from "./process.js";
import { type TestConfig, testSetup, waitFor } from "./server.js";

export const FLEET_SECRET = "fleet-secret";
export const FLEET_API_KEY = "client-key";
/** The fleet's name (its keys are `inferno:{t}:…`). */
export const FLEET_NAME = "t";
export const FLEET_HEARTBEAT_SECONDS = 0.5;
export const FLEET_NODE_TIMEOUT_SECONDS = 3;

export interface FleetTestNode {
  url: string;
  /** `host:port`, the node's id in Redis. */
  id: string;
  process: InfernoProcess;
  /** Everything the node logged so far (stderr: pino lines). */
  log(): string;
  stats(): Promise<CacheStats>;
  health(): Promise<{ fleet?: string }>;
  metrics(): Promise<string>;
  /** GET a path with the client's key and parse JSON. */
  get<T>(path: string): Promise<T>;
  /** SIGKILL: no leave, as after a crash. */
  kill(): Promise<unknown>;
}

export interface FleetTestOptions {
  /** Configuration of every node, by section (e.g. `{ cache: { max_cached_models: 2 } }`). */
  config?: TestConfig;
  /** More environment for every node. */
  env?: Record<string, string>;
}

/** One node: its models folder holds `models`. */
export async function startFleetNode(
  t: TestContext,
  redisUrl: string,
  models: Record<string, TinyLlamaOptions>,
  options: FleetTestOptions = {},
): Promise<FleetTestNode> {
  const config = { ...options.config, server: { api_key: FLEET_API_KEY, ...options.config?.server } };
  const setup = await testSetup(t, { models: { gguf: models }, config });
  const child = spawnInferno(t, ["serve"], {
    cwd: setup.cwd,
    env: {
      ...setup.env,
      INFERNO_FLEET__REDIS_URL: redisUrl,
      INFERNO_FLEET__NAME: FLEET_NAME,
      INFERNO_FLEET__SECRET: FLEET_SECRET,
      INFERNO_FLEET__HEARTBEAT_SECONDS: String(FLEET_HEARTBEAT_SECONDS),
      INFERNO_FLEET__NODE_TIMEOUT_SECONDS: String(FLEET_NODE_TIMEOUT_SECONDS),
      ...options.env,
    },
  });
  const [, url] = await child.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
  const base = url as string;
  const auth = { authorization: `Bearer ${FLEET_API_KEY}` };
  const get = async <T>(path: string) => (await (await fetch(`${base}${path}`, { headers: auth })).json()) as T;
  return {
    url: base,
    id: new URL(base).host,
    process: child,
    log: () => child.stderr(),
    stats: () => get<CacheStats>("/v1/cache/stats"),
    health: async () => (await (await fetch(`${base}/health`)).json()) as { fleet?: string },
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    get,
    kill: () => child.stop("SIGKILL"),
  };
}

export interface FleetTest {
  nodes: FleetTestNode[];
  /** Waits until every node reports `fleet: "ok"`, then two heartbeats, so each mirror holds every record. */
  settle(): Promise<void>;
  /** Each node's `loads` (`/v1/cache/stats`). */
  loads(): Promise<number[]>;
  /** Each node's loads of one model. */
  loadsOf(model: string): Promise<number[]>;
}

/** Starts one node per entry of `models` (each node's models folder), in parallel. */
export async function startFleet(
  t: TestContext,
  redisUrl: string,
  models: Array<Record<string, TinyLlamaOptions>>,
  options: FleetTestOptions = {},
): Promise<FleetTest> {
  const nodes = await Promise.all(models.map((m) => startFleetNode(t, redisUrl, m, options)));
  return {
    nodes,
    settle: () => settleFleet(nodes),
    loads: async () => Promise.all(nodes.map(async (n) => (await n.stats()).loads)),
    loadsOf: async (model) =>
      Promise.all(nodes.map(async (n) => (await n.stats()).models.find((m) => m.name === model)?.loads ?? 0)),
  };
}

export async function settleFleet(nodes: readonly FleetTestNode[]): Promise<void> {
  await waitFor(async () => (await Promise.all(nodes.map((n) => n.health()))).every((h) => h.fleet === "ok"), 100);
  await new Promise((resolve) => setTimeout(resolve, FLEET_HEARTBEAT_SECONDS * 2000 + 200));
}

/** A greedy completion of `maxTokens` tokens through `node`, with the client's key. */
export function complete(
  node: { url: string },
  model: string,
  init: { headers?: Record<string, string>; maxTokens?: number } = {},
): Promise<Response> {
  return fetch(`${node.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${FLEET_API_KEY}`, ...init.headers },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: init.maxTokens ?? 2, temperature: 0 }),
  });
}

/** Asserts a 200 (the body in the message otherwise) and reads the body. */
export async function ok(response: Promise<Response>): Promise<void> {
  const r = await response;
  assert.equal(r.status, 200, await r.clone().text());
  await r.json();
}

/** Runs `count` jobs with at most `concurrency` at a time (job i gets i). */
export async function inParallel(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await job(next++);
    }),
  );
}
