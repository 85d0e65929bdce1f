/**
 * Running a fleet, with real `inferno serve` nodes on loopback and a real `redis-server`: a fleet restart warms the
 * models used before across the nodes (each loaded once, each node ready only once its part is in), a rolling restart
 * under a steady stream of requests fails none of them, and `GET /v1/fleet` shows the nodes, copies and the plan. (A
 * leader SIGKILLed right after it wrote its plan: leader-kill.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import type { FleetView } from "../../src/server/ports.js";
import { runCli } from "../../testkit/cli.js";
import { spawnInferno, type InfernoProcess } from "../../testkit/process.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { testSetup, waitFor, type TestSetup } from "../../testkit/server.js";
import { leaseStandIn, steadyStream } from "./fleet-helpers.js";

const API_KEY = "client-key";
const AUTH = { authorization: `Bearer ${API_KEY}` };
const SIX = ["m1", "m2", "m3", "m4", "m5", "m6"];
/** The same six tiny llamas in every node's folder (same seeds: the same files). */
const MODELS = Object.fromEntries(SIX.map((m, i) => [`${m}.gguf`, { seed: i + 1 }]));

interface Node {
  id: string;
  url: string;
  process: InfernoProcess;
  get<T>(path: string): Promise<T>;
  ready(): Promise<{ status: number; body: { fleet_warmup?: { state: string; part: string[] } } }>;
}

/** A node's folder and configuration, kept across its restarts (its id, its state file). */
async function nodeSetup(t: TestContext): Promise<TestSetup> {
  return testSetup(t, {
    models: { gguf: MODELS },
    config: { server: { api_key: API_KEY }, cache: { max_cached_models: 2 } },
  });
}

const HEARTBEAT_MS = 500;
/** The leader lease: `fleet.node_timeout_seconds`. */
const LEASE_MS = 3000;

async function startNode(t: TestContext, setup: TestSetup, id: string, redisUrl: string): Promise<Node> {
  const node = startNodeNow(t, setup, id, redisUrl);
  await node.started;
  return node;
}

/** A node whose process is spawned; `started` resolves once it serves. */
function startNodeNow(
  t: TestContext,
  setup: TestSetup,
  id: string,
  redisUrl: string,
): Node & { started: Promise<void> } {
  const process = spawnInferno(t, ["serve"], {
    cwd: setup.cwd,
    env: {
      ...setup.env,
      INFERNO_FLEET__REDIS_URL: redisUrl,
      INFERNO_FLEET__NAME: "ops",
      INFERNO_FLEET__NODE_ID: id,
      INFERNO_FLEET__SECRET: "fleet-secret",
      INFERNO_FLEET__HEARTBEAT_SECONDS: String(HEARTBEAT_MS / 1000),
      INFERNO_FLEET__NODE_TIMEOUT_SECONDS: String(LEASE_MS / 1000),
    },
  });
  let base = "";
  const started = process.waitForLine(/serving \d+ model\(s\) on (http:\S+)/).then(([, url]) => {
    base = url as string;
  });
  return {
    id,
    get url() {
      return base;
    },
    started,
    process,
    get: async <T>(path: string) => {
      const response = await fetch(`${base}${path}`, { headers: AUTH });
      assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`);
      return (await response.json()) as T;
    },
    ready: async () => {
      const response = await fetch(`${base}/ready`);
      const body = (await response.json()) as { fleet_warmup?: { state: string; part: string[] } };
      return { status: response.status, body };
    },
  };
}

function complete(node: Node, model: string): Promise<Response> {
  return fetch(`${node.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...AUTH },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 2, temperature: 0 }),
  });
}

async function ok(node: Node, model: string): Promise<void> {
  const response = await complete(node, model);
  assert.equal(response.status, 200, await response.clone().text());
  await response.json();
}

/** Waits until `/ready` answers 200, noting whether it said 503 (warming) first. */
async function readyAfterWarming(node: Node): Promise<{ warmedFirst: boolean }> {
  let warmedFirst = false;
  await waitFor(async () => {
    const { status, body } = await node.ready();
    if (status === 503 && ["waiting", "loading"].includes(body.fleet_warmup?.state ?? "")) warmedFirst = true;
    return status === 200;
  }, 50);
  return { warmedFirst };
}

const loadedOn = async (node: Node) =>
  (await node.get<{ data: LoadedModelInfo[] }>("/v1/cache/models")).data.map((m) => m.name);

/** Redis and three nodes with these ids, each ready. */
async function startFleet(t: TestContext, ids: string[]) {
  const redis = await startRedis(t);
  const setups = await Promise.all(ids.map(() => nodeSetup(t)));
  const nodes = await Promise.all(setups.map((s, i) => startNode(t, s, ids[i]!, redis.url)));
  await Promise.all(nodes.map(readyAfterWarming));
  return { redis, setups, nodes };
}

describe("running a fleet of inferno serve nodes", { skip: REDIS_SKIP, timeout: 180_000 }, () => {
  it("a fleet restart warms the models used before across the nodes, each once, each node ready once its part is in", async (t) => {
    const ids = ["n1", "n2", "n3"];
    const fleet = await startFleet(t, ids);
    const { redis, setups } = fleet;
    let nodes = fleet.nodes;

    // Traffic for three models, through every node; each node saves, so the fleet's usage holds it.
    for (let i = 0; i < 9; i++) await ok(nodes[i % 3]!, SIX[i % 3]!);
    for (const node of nodes) await node.get("/v1/fleet");
    await Promise.all(
      nodes.map(async (n) => {
        const saved = await fetch(`${n.url}/v1/cache/save`, { method: "POST", headers: AUTH });
        assert.equal(saved.status, 200);
        await saved.text();
      }),
    );

    // Stop the whole fleet, start it again. A stand-in holds the leader lease until the three are in: they come up
    // seconds apart here, more than the 1 s settle window these heartbeats give (fleet-helpers.ts `leaseStandIn`).
    await Promise.all(nodes.map((n) => n.process.stop("SIGTERM")));
    const standIn = await leaseStandIn(t, redis.url, "ops");
    nodes = await Promise.all(setups.map((s, i) => startNode(t, s, ids[i]!, redis.url)));
    await standIn.release(ids);
    const warming = await Promise.all(nodes.map(readyAfterWarming));
    assert.ok(
      warming.some((w) => w.warmedFirst),
      "a node answered /ready 503 while it waited for (or loaded) its part",
    );

    // One plan over the three: each used model loads once, on the node the plan named, and nothing else loads.
    const view = await nodes[0]!.get<FleetView>("/v1/fleet");
    assert.ok(view.plan, "a warm-up plan");
    assert.deepEqual(
      view.plan.items.map((i) => i.node).sort(),
      ids,
      `one model a node: ${view.plan.items.map((i) => `${i.model} → ${i.node}`).join(", ")}`,
    );
    assert.equal(view.plan.settled, view.plan.total);
    const loaded = await Promise.all(nodes.map(loadedOn));
    for (const model of ["m1.gguf", "m2.gguf", "m3.gguf"]) {
      const where = nodes.filter((_, i) => loaded[i]!.includes(model)).map((n) => n.id);
      assert.equal(where.length, 1, `${model} is loaded once in the fleet: ${where.join(", ")}`);
      assert.deepEqual(
        view.models.find((m) => m.name === model)?.copies.map((c) => c.node),
        where,
      );
    }
    assert.equal(loaded.flat().length, 3, `only the used models: ${loaded.flat().join(", ")}`);
    for (const item of view.plan.items) assert.ok(loaded[ids.indexOf(item.node)]!.includes(item.model));
    assert.equal(view.nodes.filter((n) => n.alive).length, 3);
    assert.ok(view.leader.node !== null && ids.includes(view.leader.node));
    const m1 = view.models.find((m) => m.name === "m1.gguf");
    assert.ok(m1 && m1.requests >= 3 && m1.copies.length === 1, JSON.stringify(m1));
    // /metrics labels every series with the node.
    const metrics = await (await fetch(`${nodes[1]!.url}/metrics`)).text();
    assert.match(metrics, /inferno_cache_models_loaded\{node="n2"\}/);

    // `inferno fleet status`: the same view through the CLI, as a table and as JSON.
    const cliEnv = { ...setups[0]!.env, INFERNO_FLEET__REDIS_URL: redis.url, INFERNO_FLEET__NAME: "ops" };
    const cli = (args: string[]) => runCli(args, { env: cliEnv, cwd: setups[0]!.cwd });
    const table = await cli(["fleet", "status", "--server", nodes[2]!.url]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^fleet ops on redis:\/\/127\.0\.0\.1:\d+: 3 node\(s\), leader n\d \(epoch \d+\)$/m);
    assert.match(table.stdout, /^n1 +alive /m);
    const settled = `${view.plan.total} of ${view.plan.total} settled`;
    assert.match(table.stdout, new RegExp(`^warm-up plan ${view.plan.id} by n\\d at .*: ${settled}$`, "m"));
    // A fleet start moves nothing: no item names a node it comes from (share-back.test.ts shows a move's).
    for (const item of view.plan.items)
      assert.match(table.stdout, new RegExp(`^  ${item.model} → ${item.node}: loaded$`, "m"));
    const json = await cli(["fleet", "status", "--server", nodes[2]!.url, "--json"]);
    assert.equal((JSON.parse(json.stdout) as FleetView).plan?.id, view.plan.id);

    // `inferno fleet events`: every node's events in one stream from Redis, resumable after an id.
    type Event = { id: string; node: string; type: string; name?: string };
    const events = async (since: string, enough: (events: Event[]) => boolean) => {
      const watch = spawnInferno(t, ["fleet", "events", "--since", since, "--json"], {
        cwd: setups[0]!.cwd,
        env: cliEnv,
      });
      // Whole lines only: the last one may still be on its way.
      const lines = () => watch.stdout().split("\n").slice(0, -1);
      const parsed = () => lines().map((line) => JSON.parse(line) as Event);
      const deadline = Date.now() + 30_000;
      await waitFor(() => {
        if (Date.now() > deadline) throw new Error(`fleet events: not there within 30 s; got ${lines().join("\n")}`);
        return enough(parsed());
      }, 50);
      await watch.stop("SIGINT");
      assert.doesNotMatch(watch.stderr(), /error/i);
      return parsed();
    };
    // Until every warmed model's load is in (the stream interleaves the nodes' events as they were flushed; a node
    // that only forwarded has no cache event of its own).
    const warmed = view.plan.items.map((i) => `${i.node} ${i.model}`);
    const loadsIn = (seen: Event[]) => seen.filter((e) => e.type === "loaded").map((e) => `${e.node} ${e.name}`);
    const all = await events("0", (seen) => warmed.every((item) => loadsIn(seen).includes(item)));
    for (const node of ids)
      assert.ok(
        all.some((e) => e.node === node),
        `${node}'s events are in the one stream`,
      );
    const resumed = await events(all[1]!.id, (seen) => seen.length >= 1);
    assert.deepEqual(resumed[0], all[2], "resumed after the id it was given");
  });

  it("a rolling restart of 3 nodes under a steady stream of requests for 6 models fails none", async (t) => {
    const ids = ["r1", "r2", "r3"];
    const { redis, setups, nodes } = await startFleet(t, ids);
    for (let i = 0; i < SIX.length; i++) await ok(nodes[i % 3]!, `${SIX[i]}.gguf`);

    // A load balancer's view: the nodes in rotation. A node leaves it before its SIGTERM, returns once ready.
    const rotation = new Set(nodes);
    const stream = steadyStream(
      rotation,
      SIX.map((m) => `${m}.gguf`),
    );

    for (let i = 0; i < nodes.length; i++) {
      const old = nodes[i]!;
      rotation.delete(old);
      assert.equal(await old.process.stop("SIGTERM"), 0);
      assert.match(old.process.stderr() + old.process.stdout(), /drained: \d+ model\(s\) now served elsewhere/);
      const fresh = await startNode(t, setups[i]!, ids[i]!, redis.url);
      await readyAfterWarming(fresh);
      // Its share back through the warm-up, not all at once: at most half its 2 slots.
      const part = (await fresh.ready()).body.fleet_warmup?.part ?? [];
      assert.ok(part.length <= 1, `${fresh.id}'s part: ${part.join(", ")}`);
      nodes[i] = fresh;
      rotation.add(fresh);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await stream.stop();
    const { failures, sent } = stream;
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 100, `a steady stream: ${sent} requests`);
    t.diagnostic(`rolling restart of 3 nodes: ${sent} requests, ${failures.length} failed`);
  });
});
