/**
 * The share back, with real `inferno serve` nodes on loopback and a real `redis-server`: three nodes of 3 slots hold
 * six models, two each, under a steady stream of requests; one is drained (SIGTERM: its two models move to the other
 * two, which are then full) and started again. The warm-up plan made when it returns moves models to it from the full
 * nodes (items naming the node they come `from`), it loads them before `/ready` says 200, the nodes they came from keep
 * their copies as spares (`inferno fleet status` shows where each move comes from), and no request of the stream fails.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import type { FleetView } from "../../src/server/ports.js";
import { FLEET_API_KEY, FLEET_NAME, type FleetTestNode, settleFleet, startFleetNode } from "../../testkit/fleet.js";
import { cliSandbox } from "../../testkit/cli.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { waitFor } from "../../testkit/server.js";
import { engineFor, steadyStream } from "./fleet-helpers.js";

const SIX = ["m1", "m2", "m3", "m4", "m5", "m6"].map((m) => `${m}.gguf`);
const MODELS = Object.fromEntries(SIX.map((m, i) => [m, { seed: i + 1 }]));
const AUTH = { authorization: `Bearer ${FLEET_API_KEY}` };
/** A plan item as `/v1/fleet` shows it; a move names the node it comes `from`. */
type PlanItem = NonNullable<FleetView["plan"]>["items"][number];

async function post(node: FleetTestNode, path: string): Promise<void> {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...AUTH },
    body: "{}",
  });
  assert.equal(response.status, 200, `${path}: ${await response.text()}`);
}

const loadedOn = async (node: FleetTestNode) =>
  (await node.get<{ data: LoadedModelInfo[] }>("/v1/cache/models")).data.map((m) => m.name);

/** Node `id` with the six models, 3 slots, the copies rule off (`scale_up_rpm = 0`: the stream alone would add copies). */
const startNode = (t: Parameters<typeof startFleetNode>[0], redisUrl: string, id: string) =>
  startFleetNode(t, redisUrl, MODELS, {
    config: { cache: { max_cached_models: 3 } },
    env: { INFERNO_FLEET__NODE_ID: id, INFERNO_FLEET__SCALE_UP_RPM: "0" },
  });

it(
  "a node drained and started again gets its share back from the full nodes through the warm-up, no request failing",
  { skip: REDIS_SKIP, timeout: 120_000 },
  async (t) => {
    const redis = await startRedis(t);
    const ids = ["s1", "s2", "s3"];
    const nodes = await Promise.all(ids.map((id) => startNode(t, redis.url, id)));
    await settleFleet(nodes);
    // Two models a node.
    for (const [i, model] of SIX.entries()) await post(nodes[i % 3]!, `/v1/cache/models/${model}/load`);

    // The stream, through the nodes in rotation; it stops however the checks end.
    const rotation = new Set(nodes);
    const stream = steadyStream(rotation, SIX);
    t.after(() => stream.stop());
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The fleet's usage holds the six (the warm-up ranks what it moves by it).
    await Promise.all(nodes.map((n) => post(n, "/v1/cache/save")));

    // s1 leaves the rotation and drains: its two models go to s2 and s3, which are then full.
    const [s1, s2, s3] = nodes as [FleetTestNode, FleetTestNode, FleetTestNode];
    rotation.delete(s1);
    assert.equal(await s1.process.stop("SIGTERM"), 0);
    assert.match(s1.log() + s1.process.stdout(), /drained: 2 model\(s\) now served elsewhere/);
    const full = await Promise.all([s2, s3].map(loadedOn));
    assert.deepEqual(full.flat().sort(), SIX, `s2 and s3 hold the six: ${JSON.stringify(full)}`);

    // s1 again: ready once its part of the plan made at its return is in.
    const back = await startNode(t, redis.url, "s1");
    const startedAt = Date.now();
    await waitFor(async () => {
      if (Date.now() - startedAt > 30_000) throw new Error("s1 not ready within 30 s of its start");
      return (await fetch(`${back.url}/ready`)).status === 200;
    }, 100);
    const readyMs = Date.now() - startedAt;
    rotation.add(back);
    const view = await back.get<FleetView>("/v1/fleet");
    const moves: PlanItem[] = (view.plan?.items ?? []).filter((i) => i.node === "s1");
    assert.ok(moves.length >= 1, `the plan moves models to s1: ${JSON.stringify(view.plan)}`);
    const held = await loadedOn(back);
    for (const move of moves) {
      assert.ok(move.from === "s2" || move.from === "s3", `${move.model} comes from a full node: ${move.from}`);
      assert.equal(move.state, "loaded", `${move.model} → s1`);
      assert.ok(held.includes(move.model), `${move.model} is loaded on s1: ${held.join(", ")}`);
    }
    // About its share, not all at once: at most half its 3 slots (rounded up), 6 models ÷ 3 nodes.
    assert.ok(moves.length <= 2, `${moves.length} moves`);
    // `inferno fleet status` shows where each move comes from.
    const status = await (
      await cliSandbox(t)
    ).run(["fleet", "status", "--server", back.url], {
      INFERNO_SERVER__API_KEY: FLEET_API_KEY,
    });
    assert.equal(status.code, 0, status.stderr);
    for (const move of moves) {
      assert.ok(
        status.stdout.split("\n").includes(`  ${move.model} → s1 (from ${move.from}): loaded`),
        `${move.model}'s move in the plan table:\n${status.stdout}`,
      );
    }

    // The nodes the models came from keep their copies, now the spares (their records count them).
    const observer = await engineFor(t, redis.url, "observer", { name: FLEET_NAME });
    const givers = new Set(moves.map((m) => m.from!));
    const spareBy = Date.now() + 10_000;
    await waitFor(async () => {
      const { nodes: records } = await observer.snapshot();
      const spares = [...givers].map((id) => records.find((n) => n.id === id)?.record?.spare_copies ?? 0);
      if (Date.now() > spareBy) throw new Error(`the givers' copies are not spare within 10 s: ${spares.join(", ")}`);
      return spares.every((count) => count >= 1);
    }, 100);
    const after = await Promise.all([s2, s3].map(loadedOn));
    for (const move of moves) {
      assert.ok(after[move.from === "s2" ? 0 : 1]!.includes(move.model), `${move.from} still holds ${move.model}`);
    }

    await new Promise((resolve) => setTimeout(resolve, 1000));
    await stream.stop();
    const { failures, sent } = stream;
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 100, `a steady stream: ${sent} requests`);
    t.diagnostic(
      `s1 back and ready in ${readyMs} ms with ${moves.map((m) => `${m.model} from ${m.from}`).join(", ")}; ` +
        `${sent} requests, ${failures.length} failed`,
    );
  },
);
