/** The fleet engine's atomic operations against a real redis-server, with several engines as nodes in one process. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { FleetEngine } from "../../src/fleet/engine.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { engineFor, nodeRecord, sleep, usageDelta } from "./fleet-helpers.js";

const skip = REDIS_SKIP;
const LEASE = 60_000;

test("30 concurrent claims over three nodes: exactly one loader, every other claim sees it", { skip }, async (t) => {
  const redis = await startRedis(t);
  const nodes = await Promise.all(["a", "b", "c"].map((id) => engineFor(t, redis.url, id)));
  for (const node of nodes) await node.heartbeat("1", nodeRecord(node.nodeId), LEASE);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => (nodes[i % 3] as FleetEngine).claim("m.gguf", FleetEngine.token())),
  );
  const claimed = results.filter((r) => r.kind === "claimed");
  assert.equal(claimed.length, 1);
  const loader = results.indexOf(claimed[0]!) % 3;
  for (const result of results) {
    if (result.kind === "claimed") continue;
    assert.equal(result.kind, "held");
    assert.deepEqual(result.kind === "held" && result.holders.map((h) => [h.node, h.copy.state]), [
      [nodes[loader]!.nodeId, "loading"],
    ]);
  }
});

test("promote, renew and release need the claim's token", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await engineFor(t, redis.url, "a");
  const b = await engineFor(t, redis.url, "b");
  await a.heartbeat("1", nodeRecord("a"), LEASE);
  await b.heartbeat("1", nodeRecord("b"), LEASE);
  const token = FleetEngine.token();
  const claim = await a.claim("m", token);
  assert.equal(claim.kind, "claimed");
  assert.equal(await a.promote("m", "wrong"), null, "a wrong token cannot promote");
  assert.equal(await b.promote("m", token), null, "another node cannot promote with the token");
  assert.equal(await a.release("m", "wrong"), false, "a wrong token cannot release");
  const renewed = await a.renew("m", token);
  assert.ok(renewed && claim.kind === "claimed" && renewed.lease >= claim.copy.lease);
  const ready = await a.promote("m", token);
  assert.equal(ready?.state, "ready");
  assert.equal(await a.renew("m", token), null, "a ready copy has no lease to renew");
  const held = await b.claim("m", FleetEngine.token());
  assert.deepEqual(held.kind === "held" && held.holders.map((h) => [h.node, h.copy.state]), [["a", "ready"]]);
  assert.equal(await a.release("m", token), true);
  assert.equal(await a.promote("m", token), null, "a released copy cannot be promoted");
  assert.equal((await b.claim("m", FleetEngine.token())).kind, "claimed", "with no holder left, b loads");
  assert.deepEqual(
    (await a.snapshot()).copies.map((c) => c.node),
    ["b"],
  );
});

test(
  "a claim for the placed node: a claim meanwhile finds that node loading, which adopts the copy",
  { skip },
  async (t) => {
    const redis = await startRedis(t);
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((id) => engineFor(t, redis.url, id)));
    for (const node of [a!, b!]) await node.heartbeat("1", nodeRecord(node.nodeId), LEASE);
    const copy = (token: string) => ({ state: "loading" as const, since: 1, lease: Date.now() + LEASE, token });
    assert.equal(await c!.hold("n", copy("c")), false, "a node that is not live holds nothing");
    const lost = await a!.claim("n", FleetEngine.token(), 1, "c");
    assert.deepEqual(lost.kind === "claimed" && lost.node, "a", "never for a node that is not live: the caller loads");
    const token = FleetEngine.token();
    const claim = await a!.claim("m", token, 1, "b");
    assert.deepEqual(claim.kind === "claimed" && [claim.node, claim.copy.state], ["b", "loading"]);
    await c!.heartbeat("1", nodeRecord("c"), LEASE);
    const held = await c!.claim("m", FleetEngine.token());
    assert.deepEqual(held.kind === "held" && held.holders.map((h) => [h.node, h.copy.state]), [["b", "loading"]]);
    const own = await b!.claim("m", FleetEngine.token());
    assert.deepEqual(own.kind === "held" && own.holders.map((h) => h.node), ["b"], "b finds its own id: it loads");
    assert.equal(await a!.release("m", token), false, "the claimer holds nothing");
    // b's load starts: its own copy (its token) replaces the claimed one, and its other copies stay.
    const adopted = copy(FleetEngine.token());
    assert.equal(await b!.hold("m", adopted), true);
    assert.ok(await b!.promote("m", adopted.token));
    assert.deepEqual((await a!.snapshot()).copies.map((x) => [x.model, x.node, x.copy.state]).sort(), [
      ["m", "b", "ready"],
      ["n", "a", "loading"],
    ]);
  },
);

test("the copies rule's claim: a copy more below `wanted`, one at a time, one per node", { skip }, async (t) => {
  const redis = await startRedis(t);
  const [a, b, c] = await Promise.all(["a", "b", "c"].map((id) => engineFor(t, redis.url, id)));
  for (const node of [a!, b!, c!]) await node.heartbeat("1", nodeRecord(node.nodeId), LEASE);
  const first = await a!.claim("m", FleetEngine.token(), 2);
  assert.equal(first.kind, "claimed", "no holder: a claim as before");
  assert.equal((await b!.claim("m", FleetEngine.token(), 2)).kind, "held", "the first copy is still loading");
  await a!.promote("m", first.kind === "claimed" ? first.copy.token : "");
  assert.equal((await b!.claim("m", FleetEngine.token(), 1)).kind, "held", "one copy wanted, one there");
  const second = await b!.claim("m", FleetEngine.token(), 2);
  assert.equal(second.kind, "claimed", "two wanted, one ready: b adds the second");
  assert.equal((await c!.claim("m", FleetEngine.token(), 3)).kind, "held", "b's copy is still loading");
  await b!.promote("m", second.kind === "claimed" ? second.copy.token : "");
  assert.equal((await c!.claim("m", FleetEngine.token(), 2)).kind, "held", "two wanted, two there");
  assert.equal((await a!.claim("m", FleetEngine.token(), 3)).kind, "held", "a holds one already: never two");
  assert.equal((await c!.claim("m", FleetEngine.token(), 3)).kind, "claimed");
  assert.deepEqual((await a!.snapshot()).copies.map((x) => x.node).sort(), ["a", "b", "c"]);
});

test("a node past its lease is pruned with its copies; a claim also skips a dead holder", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await engineFor(t, redis.url, "a");
  const b = await engineFor(t, redis.url, "b");
  await a.heartbeat("1", nodeRecord("a"), 300);
  await b.heartbeat("1", nodeRecord("b"), LEASE);
  const one = FleetEngine.token();
  assert.equal((await a.claim("one", one)).kind, "claimed");
  assert.ok(await a.promote("one", one));
  assert.equal((await a.claim("two", FleetEngine.token())).kind, "claimed");
  assert.equal((await b.claim("one", FleetEngine.token())).kind, "held", "a holds it while its lease runs");
  await sleep(400);
  // The claim alone drops the dead holder's copy and gives the load to b.
  assert.equal((await b.claim("one", FleetEngine.token())).kind, "claimed");
  assert.deepEqual(await b.prune(), ["a"]);
  const snapshot = await b.snapshot();
  assert.deepEqual(
    snapshot.nodes.map((n) => n.id),
    ["b"],
  );
  assert.deepEqual(
    snapshot.copies.map((c) => [c.model, c.node]),
    [["one", "b"]],
    "no record names the dead node",
  );
  assert.deepEqual(await b.prune(), [], "pruning twice removes nothing more");
  assert.equal((await a.claim("three", FleetEngine.token())).kind, "unregistered", "a dead node cannot claim");
  const back = await a.heartbeat("1", nodeRecord("a"), LEASE);
  assert.equal(back.known, false, "a pruned node learns it was forgotten and re-publishes its copies");
});

test("a loading copy whose loader stopped renewing expires; renewing keeps it", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await engineFor(t, redis.url, "a", { loadLeaseMs: 300 });
  const b = await engineFor(t, redis.url, "b", { loadLeaseMs: 300 });
  await a.heartbeat("1", nodeRecord("a"), LEASE);
  await b.heartbeat("1", nodeRecord("b"), LEASE);
  const token = FleetEngine.token();
  assert.equal((await a.claim("renewed", token)).kind, "claimed");
  assert.equal((await a.claim("stalled", FleetEngine.token())).kind, "claimed");
  for (let i = 0; i < 3; i++) {
    await sleep(150);
    assert.ok(await a.renew("renewed", token));
  }
  assert.equal((await b.claim("renewed", FleetEngine.token())).kind, "held");
  assert.equal((await b.claim("stalled", FleetEngine.token())).kind, "claimed", "the stalled load's lease ran out");
});

test("three recent load failures fleet-wide refuse the model until one expires", { skip }, async (t) => {
  const redis = await startRedis(t);
  const options = { failureWindowMs: 600 };
  const a = await engineFor(t, redis.url, "a", options);
  const b = await engineFor(t, redis.url, "b", options);
  await a.heartbeat("1", nodeRecord("a"), LEASE);
  await b.heartbeat("1", nodeRecord("b"), LEASE);
  for (const [engine, n] of [
    [a, 1],
    [b, 2],
    [a, 3],
  ] as const) {
    const token = FleetEngine.token();
    const claim = await engine.claim("bad", token);
    assert.equal(claim.kind, "claimed", `load ${n} may start`);
    assert.equal(await engine.recordFailure("bad", token, `load ${n} failed`), n);
  }
  const refused = await b.claim("bad", FleetEngine.token());
  assert.equal(refused.kind, "refused");
  assert.deepEqual(refused.kind === "refused" && refused.failures.map((f) => [f.node, f.message]), [
    ["a", "load 1 failed"],
    ["b", "load 2 failed"],
    ["a", "load 3 failed"],
  ]);
  assert.deepEqual((await a.snapshot()).copies, [], "a failed load leaves no copy");
  await sleep(700);
  assert.equal((await b.claim("bad", FleetEngine.token())).kind, "claimed", "the failures expired");
});

test("usage deltas merge into the sum of the nodes', each delta id once", { skip }, async (t) => {
  const redis = await startRedis(t);
  const nodes = await Promise.all(["a", "b", "c"].map((id) => engineFor(t, redis.url, id)));
  assert.equal(await nodes[0]!.loadUsage(), null);
  // Concurrent merges from three nodes (compare-and-set conflicts are retried), each delta sent twice.
  const sends = nodes.flatMap((node, i) =>
    [1, 2, 3].map((n) => ({ node, id: `${node.nodeId}:${n}`, delta: usageDelta("m", (i + 1) * n) })),
  );
  const replies = await Promise.all([...sends, ...sends].map((s) => s.node.mergeUsage(s.id, s.delta)));
  assert.equal(replies.filter((r) => r === "ok").length, 9);
  assert.equal(replies.filter((r) => r === "dup").length, 9);
  const usage = await nodes[1]!.loadUsage();
  const expected = (1 + 2 + 3) * 6; // node i sends (i+1) * (1 + 2 + 3)
  assert.equal(usage?.counters.hits, expected);
  assert.equal(usage?.models[0]?.usage.requests, expected);
});

test("a restarted node process (new incarnation) loses the copies of the old one", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await engineFor(t, redis.url, "a");
  assert.equal((await a.heartbeat("first", nodeRecord("a"), LEASE)).known, false);
  assert.equal((await a.heartbeat("first", nodeRecord("a"), LEASE)).known, true);
  const token = FleetEngine.token();
  await a.claim("m", token);
  await a.promote("m", token);
  assert.equal((await a.heartbeat("second", nodeRecord("a"), LEASE)).known, false);
  assert.deepEqual((await a.snapshot()).copies, []);
});

test("a password in the URL authenticates and never shows in the engine's url or errors", { skip }, async (t) => {
  const redis = await startRedis(t, { password: "s3cret-pw" });
  const a = await engineFor(t, redis.url, "a");
  assert.equal(a.url, `redis://default:***@127.0.0.1:${redis.port}`);
  await a.heartbeat("1", nodeRecord("a"), LEASE);
  await redis.kill();
  const error = await a.claim("m", FleetEngine.token()).then(
    () => null,
    (e: unknown) => e as Error,
  );
  assert.equal((error as { code?: string } | null)?.code, "fleet_unavailable");
  assert.doesNotMatch(String(error?.message), /s3cret/);
});

test("every script runs on Redis in cluster mode: each touches only its fleet's slot", { skip }, async (t) => {
  const redis = await startRedis(t, { cluster: true });
  const a = await engineFor(t, redis.url, "a");
  const b = await engineFor(t, redis.url, "b");
  await a.heartbeat("1", nodeRecord("a"), LEASE);
  await b.heartbeat("1", nodeRecord("b"), LEASE);
  assert.equal((await a.claim("m", FleetEngine.token(), 1, "b")).kind, "claimed");
  const token = FleetEngine.token();
  assert.equal(await b.hold("m", { state: "loading", since: 1, lease: Date.now() + LEASE, token }), true);
  assert.ok(await b.renew("m", token));
  const other = FleetEngine.token();
  assert.equal((await a.claim("n", other)).kind, "claimed");
  assert.ok(await a.promote("n", other));
  assert.equal(await a.recordFailure("x", FleetEngine.token(), "boom"), 1);
  assert.equal(await b.publish([{ model: "m", copy: { state: "ready", since: 1, lease: 0, token: "t" } }]), true);
  assert.equal(await a.release("n", other), true);
  assert.deepEqual(await a.prune(), []);
  assert.equal(await a.mergeUsage("d1", usageDelta("m", 2)), "ok");
  assert.equal((await b.loadUsage())?.counters.hits, 2);
  assert.deepEqual(
    (await b.snapshot()).copies.map((c) => [c.model, c.node]),
    [["m", "b"]],
  );
  // Every key the scripts wrote hashes to the slot of the key they declare (the feed): Redis Cluster runs a script on
  // the node serving that slot, and a key of another slot would not be there (Redis 7.0 does not check undeclared
  // keys on a node serving every slot, so the test does).
  const raw = new Redis(redis.url);
  t.after(() => raw.disconnect());
  const slot = await raw.call("CLUSTER", "KEYSLOT", a.keys.feed);
  const keys = await raw.keys("*");
  assert.ok(keys.length >= 8, keys.join(", "));
  for (const key of keys) assert.equal(await raw.call("CLUSTER", "KEYSLOT", key), slot, key);
  assert.equal(await a.leave("1"), true);
});
