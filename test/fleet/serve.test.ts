/**
 * Real `inferno serve` nodes on loopback joined through a real `redis-server`: a model held by one node is answered
 * through another without a second load, concurrent cold requests spread over the nodes make one load in the fleet, a
 * forward without the fleet secret is refused, and a node whose Redis died keeps answering and reports `degraded`.
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { TinyLlamaOptions } from "../../src/models/gguf-writer.js";
import { FLEET_HOP_HEADER, FLEET_SECRET_HEADER } from "../../src/server/fleet.js";
import {
  complete,
  FLEET_API_KEY,
  FLEET_NODE_TIMEOUT_SECONDS,
  FLEET_SECRET,
  type FleetTestNode,
  ok,
  settleFleet,
  startFleetNode,
} from "../../testkit/fleet.js";
import { engineFor } from "./fleet-helpers.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { waitFor } from "../../testkit/server.js";

/** Two nodes with the same `a.gguf`; the first loaded it, and the second's mirror knows. */
async function twoNodesFirstHolding(t: TestContext) {
  const redis = await startRedis(t);
  const nodes = await Promise.all([0, 1].map(() => startFleetNode(t, redis.url, { "a.gguf": { seed: 1 } })));
  await settleFleet(nodes);
  const [first, second] = nodes as [FleetTestNode, FleetTestNode];
  await ok(complete(first, "a.gguf"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  return { redis, first, second };
}

/** Nodes over two model folders, one with `a.gguf` (0), one with `b.gguf` (1), as `layout` lists them; settled. */
async function splitFolders(t: TestContext, layout: number[] = [0, 1]) {
  const redis = await startRedis(t);
  const folders: Array<Record<string, TinyLlamaOptions>> = [{ "a.gguf": { seed: 1 } }, { "b.gguf": { seed: 2 } }];
  const nodes = await Promise.all(layout.map((i) => startFleetNode(t, redis.url, folders[i]!)));
  await settleFleet(nodes);
  return { redis, nodes };
}

const loadsOf = async (nodes: FleetTestNode[]) => Promise.all(nodes.map(async (n) => (await n.stats()).loads));

describe("a fleet of inferno serve nodes", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("answers through another node without a second load, and makes one load of 10 concurrent cold requests", async (t) => {
    const redis = await startRedis(t);
    const models = { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } };
    const nodes = await Promise.all([0, 1].map(() => startFleetNode(t, redis.url, models)));
    await settleFleet(nodes);
    const [first, second] = nodes as [FleetTestNode, FleetTestNode];

    await ok(complete(first, "a.gguf"));
    assert.deepEqual(await loadsOf(nodes), [1, 0]);
    // The copy is published ready; the second node's mirror learns it from the feed.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 3; i++) await ok(complete(second, "a.gguf"));
    assert.deepEqual(await loadsOf(nodes), [1, 0], "answered through the holder, not loaded again");

    await Promise.all(Array.from({ length: 10 }, (_, i) => ok(complete(nodes[i % 2] as FleetTestNode, "b.gguf"))));
    const loads = await loadsOf(nodes);
    assert.equal(loads[0]! + loads[1]!, 2, `one load of b.gguf in the fleet (loads per node: ${loads.join(", ")})`);

    // A stream through the node without the model passes through unchanged: SSE chunks, then [DONE].
    const streamed = await fetch(`${second.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${FLEET_API_KEY}` },
      body: JSON.stringify({
        model: "a.gguf",
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 4,
        temperature: 0,
        stream: true,
      }),
    });
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers.get("content-type") ?? "", /text\/event-stream/);
    const events = (await streamed.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    assert.ok(events.length >= 2, `chunks, then the end: ${events.join(" | ")}`);
    assert.equal(events.at(-1), "data: [DONE]");

    // A client that leaves a forwarded stream ends the generation on the holder.
    const controller = new AbortController();
    const long = await fetch(`${second.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${FLEET_API_KEY}` },
      body: JSON.stringify({
        model: "a.gguf",
        prompt: "Once upon a time",
        max_tokens: 400,
        temperature: 0,
        stream: true,
      }),
      signal: controller.signal,
    });
    assert.equal(long.status, 200);
    await long.body!.getReader().read();
    controller.abort();
    await waitFor(async () => /^inferno_generations_aborted_total\{node="[^"]+"\} 1$/m.test(await first.metrics()), 50);

    // An error of the holder passes through as it is: status and body, as its own client gets them.
    const invalid = { model: "a.gguf", prompt: "x", max_tokens: -5 };
    const post = (node: FleetTestNode) =>
      fetch(`${node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${FLEET_API_KEY}` },
        body: JSON.stringify(invalid),
      });
    const [direct, through] = await Promise.all([post(first), post(second)]);
    assert.equal(direct.status, 400);
    assert.equal(through.status, direct.status);
    assert.deepEqual(await through.json(), await direct.json());
    // The forwarding node's own request metrics count it under the status its client got.
    assert.match(
      await second.metrics(),
      /^inferno_http_requests_total\{[^}]*route="\/v1\/completions"[^}]*status="400"[^}]*\} 1$/m,
    );

    // An unknown model is the same 404 through any node, and claims nothing.
    const unknown = await complete(second, "nowhere.gguf");
    assert.equal(unknown.status, 404, await unknown.text());

    // A forward without the secret is refused; with it, it is served.
    const noSecret = await complete(second, "a.gguf", { headers: { [FLEET_HOP_HEADER]: "1" } });
    assert.equal(noSecret.status, 401, await noSecret.text());
    const wrong = await complete(second, "a.gguf", {
      headers: { [FLEET_HOP_HEADER]: "1", [FLEET_SECRET_HEADER]: "guess" },
    });
    assert.equal(wrong.status, 401);
    await wrong.text();
    // At the hop bound a forward is served where it arrived, never forwarded again: here, a second load of a.gguf.
    const before = await loadsOf(nodes);
    await ok(complete(second, "a.gguf", { headers: { [FLEET_HOP_HEADER]: "2", [FLEET_SECRET_HEADER]: FLEET_SECRET } }));
    assert.deepEqual(
      await loadsOf(nodes),
      [before[0], before[1]! + 1],
      `forwards that failed: ${
        second
          .log()
          .match(/forwarding to .*/g)
          ?.join("; ") ?? "none"
      }`,
    );

    // Shared statistics: once each node saved, the fleet's usage of a model is the sum of the nodes'.
    for (const node of nodes) {
      const saved = await fetch(`${node.url}/v1/cache/save`, {
        method: "POST",
        headers: { authorization: `Bearer ${FLEET_API_KEY}` },
      });
      assert.equal(saved.status, 200, await saved.text());
    }
    const engine = await engineFor(t, redis.url, "reader", { name: "t" });
    const fleetUsage = await engine.loadUsage();
    for (const model of ["a.gguf", "b.gguf"]) {
      const perNode = await Promise.all(
        nodes.map(async (n) => (await n.stats()).models.find((m) => m.name === model)?.requests ?? 0),
      );
      const inFleet = (fleetUsage?.models ?? [])
        .filter((m) => m.name === model)
        .reduce((sum, m) => sum + m.usage.requests, 0);
      assert.ok(perNode[0]! + perNode[1]! > 0);
      assert.equal(inFleet, perNode[0]! + perNode[1]!, `${model}: fleet ${inFleet}, nodes ${perNode.join(" + ")}`);
    }
  });

  it("a node whose Redis died answers requests alone and reports degraded", async (t) => {
    const redis = await startRedis(t);
    const node = await startFleetNode(t, redis.url, { "a.gguf": { seed: 1 } });
    await settleFleet([node]);
    await redis.kill();
    await ok(complete(node, "a.gguf"));
    await waitFor(async () => (await node.health()).fleet === "degraded", 100);
    await ok(complete(node, "a.gguf"));
    // Redis back, empty: the node re-registers within a heartbeat or two.
    await redis.restart();
    await waitFor(async () => (await node.health()).fleet === "ok", 100);
    await ok(complete(node, "a.gguf"));
  });

  it("a node SIGKILLed while holding a model: its requests are answered through the other at once", async (t) => {
    const { redis, first, second } = await twoNodesFirstHolding(t);
    await ok(complete(second, "a.gguf"));
    assert.equal((await second.stats()).loads, 0, "forwarded to the holder");
    await first.kill();
    // The mirror still shows the dead holder (its lease runs): the forward fails before any byte, and the model loads
    // here instead.
    await ok(complete(second, "a.gguf"));
    assert.equal((await second.stats()).loads, 1);
    // Its copy is published: a third node routes to it.
    const third = await startFleetNode(t, redis.url, { "a.gguf": { seed: 1 } });
    await settleFleet([second, third]);
    await ok(complete(third, "a.gguf"));
    assert.equal((await third.stats()).loads, 0, "forwarded to the surviving copy");
  });
});

describe("Redis gone under nodes with different model folders", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("a model only another node has is still served through this one, held there or not", async (t) => {
    const { redis, nodes } = await splitFolders(t);
    const [first, second] = nodes as [FleetTestNode, FleetTestNode];
    await ok(complete(first, "a.gguf"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.kill();
    await waitFor(async () => (await first.health()).fleet === "degraded", 100);
    await waitFor(async () => (await second.health()).fleet === "degraded", 100);
    // Held by the first node (the mirror as Redis last showed it), and not loaded anywhere yet (the second has its file).
    await ok(complete(second, "a"));
    await ok(complete(first, "b.gguf"));
    assert.deepEqual(await loadsOf([first, second]), [1, 1]);
    // Once the leases the mirror last read have run out, a forward that waits (here for a holder paused a second) is
    // not given up for them: with Redis away no lease is renewed, so none tells a dead node from a live one.
    await new Promise((resolve) => setTimeout(resolve, (FLEET_NODE_TIMEOUT_SECONDS + 0.5) * 1000));
    first.process.child.kill("SIGSTOP");
    const resumed = new Promise((resolve) => setTimeout(resolve, 1000)).then(() => first.process.child.kill("SIGCONT"));
    await ok(complete(second, "a.gguf"));
    await resumed;
    assert.deepEqual(await loadsOf([first, second]), [1, 1]);
  });
});

describe("the only node with a model's file restarting", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("answers 503 with Retry-After through the others meanwhile, not a 404", async (t) => {
    const { nodes } = await splitFolders(t);
    const [first, second] = nodes as [FleetTestNode, FleetTestNode];
    await ok(complete(second, "a"));
    await first.process.stop();
    await waitFor(async () => (await second.get<{ data: Array<{ id: string }> }>("/v1/models")).data.length === 1, 50);
    const away = await complete(second, "a");
    assert.equal(away.status, 503, await away.clone().text());
    assert.equal(((await away.json()) as { error: { code: string } }).error.code, "fleet_model_away");
    assert.ok(Number(away.headers.get("retry-after")) >= 1);
    // A name no node ever served is still a 404.
    assert.equal((await complete(second, "nowhere")).status, 404);
  });

  it("and when it was killed (its record still there, the forward refused)", async (t) => {
    const { nodes } = await splitFolders(t);
    const [first, second] = nodes as [FleetTestNode, FleetTestNode];
    await ok(complete(second, "a"));
    await first.kill();
    const away = await complete(second, "a");
    assert.equal(away.status, 503, await away.clone().text());
    assert.ok(Number(away.headers.get("retry-after")) >= 1);
  });
});

describe("a holder killed while another node has the file", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("a node without the file sends its request to the node with it at once, not a 404", async (t) => {
    const { nodes } = await splitFolders(t, [0, 1, 0]);
    const [first, second, third] = nodes as [FleetTestNode, FleetTestNode, FleetTestNode];
    await ok(complete(first, "a.gguf"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await first.kill();
    // The dead holder's lease still runs: the forward fails before any byte, and the model loads on the third node.
    await ok(complete(second, "a.gguf"));
    assert.equal((await second.stats()).loads, 0);
    assert.equal((await third.stats()).loads, 1);
    // Until its lease ends, the next requests skip it: one failed forward, one warning, not one per request.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 5; i++) await ok(complete(second, "a.gguf"));
    const warned = second.log().match(new RegExp(`forwarding to ${first.url} failed`, "g")) ?? [];
    assert.equal(warned.length, 1, second.log());
    assert.equal((await third.stats()).loads, 1);
  });
});

describe("a holder that hangs before its first byte", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("is given up when its lease ends: the request loads the model elsewhere", async (t) => {
    const { first, second } = await twoNodesFirstHolding(t);
    // SIGSTOP: the holder's port still accepts connections, and nothing answers.
    first.process.child.kill("SIGSTOP");
    const started = Date.now();
    await ok(complete(second, "a.gguf"));
    const waited = Date.now() - started;
    assert.equal((await second.stats()).loads, 1, "loaded on the node that took the request");
    const bound = (FLEET_NODE_TIMEOUT_SECONDS + 2) * 1000;
    assert.ok(waited <= bound, `answered after ${waited} ms (the holder's lease: ${FLEET_NODE_TIMEOUT_SECONDS} s)`);
    assert.match(second.log(), /stopped heartbeating before its first byte/);
    first.process.child.kill("SIGKILL");
  });
});
