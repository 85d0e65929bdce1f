/**
 * The warm-up leader killed mid-plan, with real `inferno serve` nodes on loopback and a real `redis-server`: three
 * nodes start over a fleet usage of three models, and the node that writes the warm-up plan is SIGKILLed the moment
 * its log says so (its own part not loaded yet). Another node leads within one lease, plans the dead leader's part over
 * the two left, and that plan settles once, each model loaded at most once.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import type { FleetView } from "../../src/server/ports.js";
import {
  FLEET_HEARTBEAT_SECONDS,
  FLEET_NAME,
  FLEET_NODE_TIMEOUT_SECONDS,
  type FleetTestNode,
  settleFleet,
  startFleet,
} from "../../testkit/fleet.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { waitFor } from "../../testkit/server.js";
import { leaseStandIn, usageDelta } from "./fleet-helpers.js";

const MODELS = Object.fromEntries(["m1", "m2", "m3"].map((m, i) => [`${m}.gguf`, { seed: i + 1 }]));
/** Two slots a node: a warm-up plan gives each node one model (half its free slots). */
const OPTIONS = { config: { cache: { max_cached_models: 2 } } };
const LEASE_MS = FLEET_NODE_TIMEOUT_SECONDS * 1000;
const HEARTBEAT_MS = FLEET_HEARTBEAT_SECONDS * 1000;

/**
 * Polls the nodes' logs until one has a line matching `pattern` (and `accept`): that node and when it was seen. Throws
 * after 30 s.
 */
async function waitForLog(
  nodes: readonly FleetTestNode[],
  pattern: RegExp,
  accept: (match: RegExpExecArray) => boolean = () => true,
): Promise<{ node: FleetTestNode; match: RegExpExecArray; at: number }> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const node of nodes) {
      for (const line of node.log().split("\n")) {
        const match = pattern.exec(line);
        if (match && accept(match)) return { node, match, at: Date.now() };
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no log line ${pattern} within 30 s`);
}

const loadedOn = async (node: FleetTestNode) =>
  (await node.get<{ data: LoadedModelInfo[] }>("/v1/cache/models")).data.map((m) => m.name);

it(
  "the leader killed mid-plan: another node takes over within one lease and the plan finishes once",
  { skip: REDIS_SKIP, timeout: 120_000 },
  async (t) => {
    const redis = await startRedis(t);
    // The fleet's usage holds three models. Until the three nodes are all in the fleet, a stand-in holds the leader
    // lease, so that the first plan is over all three (a node the killed plan did not name would be planned for as a
    // join).
    const standIn = await leaseStandIn(t, redis.url, FLEET_NAME);
    for (const [i, model] of Object.keys(MODELS).entries()) {
      await standIn.engine.mergeUsage(`use-${model}`, usageDelta(model, 30 - 10 * i, Date.now()));
    }
    const { nodes } = await startFleet(t, redis.url, [MODELS, MODELS, MODELS], OPTIONS);
    await settleFleet(nodes);
    await standIn.release(nodes.map((n) => n.id));

    // A node leads and plans the three models over the three nodes; it is killed the moment it wrote the plan.
    const { node: leader, match } = await waitForLog(nodes, /fleet: warm-up plan (\d+):\d+: (.*?)"/);
    await leader.kill();
    const killedAt = Date.now();
    const epoch = Number(match[1]);
    const plan = match[2]!.split(", ").filter((item) => item.includes(" → "));
    assert.equal(new Set(plan.map((item) => item.split(" → ")[1])).size, 3, `a plan over the three: ${match[2]}`);
    const killedPart = plan.filter((item) => item.endsWith(` → ${leader.id}`)).map((i) => i.split(" → ")[0]!);
    const survivors = nodes.filter((n) => n !== leader);
    t.diagnostic(`plan ${epoch}: ${plan.join(", ")}; ${leader.id} killed`);

    const next = await waitForLog(survivors, /leads the warm-up \(epoch (\d+)\)/, (m) => Number(m[1]) > epoch);
    const takeoverMs = next.at - killedAt;
    assert.ok(
      takeoverMs <= LEASE_MS + 2 * HEARTBEAT_MS,
      `${next.node.id} took over ${takeoverMs} ms after the kill (lease ${LEASE_MS} ms)`,
    );

    // The successor's plan covers the two left and settles; nothing waits on the dead node.
    let final: FleetView["plan"] = null;
    const deadline = Date.now() + 30_000;
    await waitFor(async () => {
      final = (await survivors[0]!.get<FleetView>("/v1/fleet")).plan;
      if (Date.now() > deadline)
        throw new Error(`the successor's plan did not settle in 30 s: ${JSON.stringify(final)}`);
      return (
        final !== null &&
        final.epoch > epoch &&
        final.settled === final.total &&
        !final.items.some((i) => i.node === leader.id)
      );
    }, 100);
    const settled = final! as NonNullable<FleetView["plan"]>;
    const after = await Promise.all(survivors.map(loadedOn));
    for (const model of Object.keys(MODELS)) {
      const where = survivors.filter((_, i) => after[i]!.includes(model));
      assert.ok(where.length <= 1, `${model} is loaded at most once: ${where.map((n) => n.id).join(", ")}`);
    }
    // The dead leader's part is done elsewhere: its models are loaded on a survivor.
    for (const model of killedPart) {
      assert.ok(after.flat().includes(model), `${model}, the killed leader's part, is loaded on a survivor`);
    }
    for (const item of settled.items) {
      assert.equal(item.state, "loaded", `${item.model} → ${item.node}`);
      assert.ok(after[survivors.findIndex((n) => n.id === item.node)]!.includes(item.model));
    }
    t.diagnostic(
      `leader ${leader.id} (epoch ${epoch}) killed with its part ${killedPart.join(", ") || "(empty)"} unloaded; ` +
        `${next.node.id} led ${takeoverMs} ms later (lease ${LEASE_MS} ms); plan ${settled.id}: ` +
        settled.items.map((i) => `${i.model} → ${i.node}`).join(", "),
    );
  },
);
