/**
 * Fleet members (a node's heartbeat, mirror, own copies and usage deltas) against a real redis-server that is killed,
 * restarted empty, stopped and continued under them.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { mergeDelta } from "../../src/cache/persistence/merge.js";
import type { CacheState, StateDelta } from "../../src/cache/persistence/types.js";
import { FleetLoadRefused } from "../../src/errors/index.js";
import { FleetEngine, type FleetEngineOptions } from "../../src/fleet/engine.js";
import { FleetMember } from "../../src/fleet/member.js";
import type { NodeRecord } from "../../src/fleet/types.js";
import { FleetUsageStore } from "../../src/fleet/usage-store.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { nodeRecord, sleep, usageDelta } from "./fleet-helpers.js";

const skip = REDIS_SKIP;
const HEARTBEAT_MS = 200;
const NODE_TIMEOUT_MS = 1000;
const CALL_TIMEOUT_MS = 300;

interface TestNode {
  member: FleetMember;
  warnings: string[];
  infos: string[];
  /** The node's own statistics, as its state file would hold them. */
  local: CacheState | null;
  save(delta: StateDelta): Promise<void>;
}

async function startNode(
  t: TestContext,
  redisUrl: string,
  id: string,
  options: {
    engine?: Partial<FleetEngineOptions>;
    record?: Partial<NodeRecord>;
    heartbeatMs?: number;
    /** The node's state file at its start (a restarted process's): none by default. */
    local?: CacheState | null;
  } = {},
) {
  const node: Partial<TestNode> & { local: CacheState | null; warnings: string[]; infos: string[] } = {
    local: options.local ?? null,
    warnings: [],
    infos: [],
  };
  const member = await FleetMember.start({
    engine: new FleetEngine({
      redisUrl,
      name: "test",
      nodeId: id,
      callTimeoutMs: CALL_TIMEOUT_MS,
      ...options.engine,
    }),
    heartbeatMs: options.heartbeatMs ?? HEARTBEAT_MS,
    nodeTimeoutMs: Math.max(NODE_TIMEOUT_MS, 3 * (options.heartbeatMs ?? 0)),
    record: () => nodeRecord(id, options.record),
    localUsage: async () => node.local,
    log: { warn: (m) => node.warnings.push(m), info: (m) => node.infos.push(m) },
    feedBlockMs: 500,
  });
  t.after(() => member.close());
  node.member = member;
  // As the cache's saver will: the node's own file first, then the fleet.
  node.save = async (delta) => {
    node.local = mergeDelta(node.local, delta);
    await member.saveUsage(delta);
  };
  return node as TestNode;
}

type FleetNode = Awaited<ReturnType<typeof startNode>>;
const bothJoined = (a: FleetNode, b: FleetNode) => a.member.status === "joined" && b.member.status === "joined";
/** Neither node holds a usage delta that Redis has not merged yet. */
const noPendingDeltas = (a: FleetNode, b: FleetNode) => a.member.pendingDeltas === 0 && b.member.pendingDeltas === 0;

/** A Redis and two nodes joined to it, `a` and `b`. */
async function twoNodes(t: TestContext) {
  const redis = await startRedis(t);
  const a = await startNode(t, redis.url, "a");
  const b = await startNode(t, redis.url, "b");
  return { redis, a, b };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
  return Date.now() - start;
}

const states = (node: TestNode, model: string) => node.member.holders(model).map((h) => [h.node, h.copy.state]);

/** How long `promise` took to settle (ms), and its value. */
async function timed<T>(promise: Promise<T>): Promise<[T, number]> {
  const start = Date.now();
  const value = await promise;
  return [value, Date.now() - start];
}

test(
  "a node's mirror follows the feed: claims, promotions, releases and records of other nodes",
  { skip },
  async (t) => {
    const { a, b } = await twoNodes(t);
    assert.equal(a.member.status, "joined");
    const claim = await a.member.claim("m");
    assert.equal(claim.kind, "claimed");
    const token = claim.kind === "claimed" ? claim.copy.token : "";
    await waitFor("b to see a's load", () => states(b, "m").length === 1);
    assert.deepEqual(states(b, "m"), [["a", "loading"]]);
    await a.member.promote("m", token);
    await waitFor("b to see a's ready copy", () => states(b, "m")[0]?.[1] === "ready");
    assert.equal(b.member.mirror.node("a")?.record?.url, "http://a");
    const held = await b.member.claim("m");
    assert.deepEqual(held.kind === "held" && held.holders.map((h) => h.node), ["a"]);
    await a.member.release("m", token);
    await waitFor("b to see the copy gone", () => states(b, "m").length === 0);
    assert.deepEqual(a.warnings, []);
  },
);

test(
  "a beat asked for while one runs follows it: the fleet gets the record from after the change",
  { skip },
  async (t) => {
    const redis = await startRedis(t);
    // Heartbeats a minute apart: only the beats asked for publish the record here.
    const record: Partial<NodeRecord> = { model_count: 1 };
    const a = await startNode(t, redis.url, "a", { record, heartbeatMs: 60_000 });
    const b = await startNode(t, redis.url, "b", { heartbeatMs: 60_000 });
    await waitFor("b to see a's record", () => b.member.mirror.node("a")?.record?.model_count === 1);
    const running = a.member.beat();
    // A load ends while that beat is on its way (its record says 1 model), and asks for a beat of its own.
    record.model_count = 2;
    await Promise.all([running, a.member.beat()]);
    await waitFor("b to see a's record after the load", () => b.member.mirror.node("a")?.record?.model_count === 2);
  },
);

test("a node that stops heartbeating drops out of every mirror, and its copies with it", { skip }, async (t) => {
  const { a, b } = await twoNodes(t);
  for (const model of ["one", "two"]) {
    const claim = await a.member.claim(model);
    assert.equal(claim.kind, "claimed");
    if (claim.kind === "claimed") await a.member.promote(model, claim.copy.token);
  }
  await waitFor("b to see both copies", () => states(b, "one").length + states(b, "two").length === 2);
  await a.member.close({ leave: false }); // as a SIGKILLed node: no release
  const gone = await waitFor("a's copies to leave b's mirror", () => states(b, "one").length === 0, 3000);
  assert.ok(gone <= NODE_TIMEOUT_MS + 2 * HEARTBEAT_MS + 200, `took ${gone} ms`);
  await waitFor("a pruned", () => b.member.mirror.node("a") === undefined, 3000);
  const snapshot = await b.member.engine.snapshot();
  assert.deepEqual(snapshot.copies, [], "no record names the dead node");
  assert.deepEqual(
    snapshot.nodes.map((n) => n.id),
    ["b"],
  );
  assert.equal((await b.member.claim("one")).kind, "claimed", "b loads the dead node's model");
});

test("three failed loads refuse the model fleet-wide with a clear error", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await startNode(t, redis.url, "a");
  for (let i = 1; i <= 3; i++) {
    const claim = await a.member.claim("bad.gguf");
    assert.equal(claim.kind, "claimed");
    if (claim.kind === "claimed") await a.member.failed("bad.gguf", claim.copy.token, `bad magic ${i}`);
  }
  await assert.rejects(a.member.claim("bad.gguf"), (error: unknown) => {
    assert.ok(error instanceof FleetLoadRefused);
    assert.match(error.message, /^bad\.gguf failed to load 3 times in the fleet within 15 min \(a: bad magic 1; /);
    assert.match(error.message, /no node loads it again for \d+ s$/);
    assert.ok(Number(error.details?.retry_after_seconds) > 800);
    return true;
  });
});

test(
  "Redis SIGKILLed and restarted empty: single nodes meanwhile, then re-registered, copies re-published, usage the sum once",
  { skip },
  async (t) => {
    const { redis, a, b } = await twoNodes(t);
    const claim = await a.member.claim("m");
    if (claim.kind === "claimed") await a.member.promote("m", claim.copy.token);
    await a.save(usageDelta("m", 1));
    await b.save(usageDelta("m", 2));
    assert.equal((await a.member.loadUsage())?.counters.hits, 3);

    await redis.kill();
    const [local, took] = await timed(a.member.claim("x"));
    assert.equal(local.kind, "local", "with Redis down a miss loads on this node");
    assert.ok(took < 1000, `the claim waited ${took} ms`);
    assert.equal(a.member.status, "degraded");
    await a.member.promote("x", local.copy.token);
    await a.save(usageDelta("m", 4));
    await b.save(usageDelta("x", 8));
    assert.equal(a.member.pendingDeltas, 1);
    await waitFor("b degraded", () => b.member.status === "degraded");
    await sleep(3 * HEARTBEAT_MS);
    assert.equal(a.warnings.length, 1, "one warning per node and outage");
    assert.equal(b.warnings.length, 1);
    assert.doesNotMatch(a.warnings[0] as string, /password/);

    await redis.restart();
    const back = await waitFor("both nodes back", () => bothJoined(a, b));
    assert.ok(back < 2 * HEARTBEAT_MS + 1000 + 500, `back after ${back} ms`); // + ioredis's reconnect delay (≤ 1 s)
    await waitFor("b to see a's copies again", () => states(b, "m").length === 1 && states(b, "x").length === 1);
    assert.deepEqual(states(b, "x"), [["a", "ready"]]);
    const after = await a.member.claim("z");
    assert.equal(after.kind, "claimed");
    await waitFor("b's mirror to follow the new Redis's feed", () => states(b, "z").length === 1, 2000);
    await waitFor("pending deltas merged", () => noPendingDeltas(a, b));
    const usage = await a.member.loadUsage();
    assert.equal(usage?.counters.hits, 1 + 2 + 4 + 8, "fleet usage = the sum of the nodes' own statistics");
    assert.equal(usage?.counters.hits, (a.local?.counters.hits ?? 0) + (b.local?.counters.hits ?? 0));
    await sleep(3 * HEARTBEAT_MS);
    assert.equal((await a.member.loadUsage())?.counters.hits, 15, "and counted once");
    assert.equal(a.infos.length, 1);
    assert.equal(a.warnings.length, 1);
  },
);

test(
  "Redis SIGSTOPped: no call waits more than 1 s, the node reports degraded; SIGCONT: it recovers and merges once",
  { skip },
  async (t) => {
    const { redis, a, b } = await twoNodes(t);
    await a.save(usageDelta("m", 1));

    redis.signal("SIGSTOP");
    const [claim, claimMs] = await timed(a.member.claim("y"));
    assert.equal(claim.kind, "local");
    assert.ok(claimMs < 1000, `the claim waited ${claimMs} ms`);
    assert.equal(a.member.status, "degraded");
    const [, saveMs] = await timed(a.save(usageDelta("m", 2)));
    assert.ok(saveMs < 1000, `the save waited ${saveMs} ms`);
    const [, bSaveMs] = await timed(b.save(usageDelta("m", 4)));
    assert.ok(bSaveMs < 1000, `b's save waited ${bSaveMs} ms`);
    await waitFor("b degraded", () => b.member.status === "degraded", 2000);
    assert.deepEqual(b.member.summary(), {
      status: "degraded",
      node_id: "b",
      redis: redis.url,
      live_nodes: 2,
      pending_deltas: 1,
    });
    const [, holdersMs] = await timed(Promise.resolve(b.member.holders("y")));
    assert.ok(holdersMs < 5, "routing reads the mirror only");

    redis.signal("SIGCONT");
    await waitFor("both nodes back", () => bothJoined(a, b), 3000);
    await waitFor("pending deltas merged", () => noPendingDeltas(a, b));
    await sleep(3 * HEARTBEAT_MS);
    assert.equal((await b.member.loadUsage())?.counters.hits, 1 + 2 + 4);
    await waitFor("b to see a's local copy published", () => states(b, "y").length === 1);
    assert.equal(a.warnings.length, 1);
  },
);

test(
  "the fleet usage store: saves merge the node's deltas; a load reads the fleet's sum, or warns when Redis is away",
  { skip },
  async (t) => {
    const { redis, a, b } = await twoNodes(t);
    const storeA = new FleetUsageStore(a.member);
    const storeB = new FleetUsageStore(b.member);
    assert.match(storeA.path, /^redis:\/\/127\.0\.0\.1:\d+ \(fleet usage, inferno:\{test\}:usage\)$/);
    assert.deepEqual(await storeA.load(), { state: null, warning: null });
    await storeA.save(usageDelta("m", 3));
    await storeB.save(usageDelta("n", 5));
    const loaded = await storeB.load();
    assert.equal(loaded.state?.counters.hits, 8);
    assert.deepEqual(loaded.state?.models.map((m) => [m.key, m.usage.requests]).sort(), [
      ["m", 3],
      ["n", 5],
    ]);
    await redis.kill();
    await waitFor("a degraded", () => a.member.status === "degraded", 3000);
    const [saved, ms] = await timed(storeA.save(usageDelta("m", 1)));
    assert.ok(saved.bytes > 0 && ms < 50, "a save during an outage is kept, not failed or waited on");
    const away = await storeA.load();
    assert.equal(away.state, null);
    assert.match(away.warning ?? "", /Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable/);
  },
);

test("a graceful close removes the node and its copies at once", { skip }, async (t) => {
  const { a, b } = await twoNodes(t);
  const claim = await a.member.claim("m");
  if (claim.kind === "claimed") await a.member.promote("m", claim.copy.token);
  await waitFor("b to see a's copy", () => states(b, "m").length === 1);
  await a.member.close();
  const gone = await waitFor("a's copy gone from b's mirror", () => states(b, "m").length === 0);
  assert.ok(gone < NODE_TIMEOUT_MS, `took ${gone} ms: the lease did not have to run out`);
  assert.deepEqual(
    (await b.member.engine.snapshot()).nodes.map((n) => n.id),
    ["b"],
  );
});

test("placement from the mirror: a node with the file, not one that just failed to load it", { skip }, async (t) => {
  const redis = await startRedis(t);
  const served = { size: 100, bytes: 1 << 20 };
  const a = await startNode(t, redis.url, "a", { record: { serves: { "m.gguf": served, "n.gguf": served } } });
  const b = await startNode(t, redis.url, "b", { record: { serves: { "n.gguf": served } } });
  await waitFor("b to see a's record", () => b.member.mirror.node("a")?.record !== null);
  assert.deepEqual(b.member.place("m.gguf"), { node: "a" }, "only a has the file");
  assert.deepEqual(b.member.place("n.gguf"), { node: "b" }, "both have it: the receiving node");
  assert.deepEqual(b.member.place("n.gguf", { size: 100 }, ["b"]), { node: "a" }, "b failed this request");
  assert.deepEqual(b.member.place("x.gguf"), { node: null, reason: "no_file" });
  const claim = await a.member.claim("m.gguf");
  if (claim.kind === "claimed") await a.member.failed("m.gguf", claim.copy.token, "out of memory");
  await waitFor("b to see the failure", () => b.member.place("m.gguf").node === null);
  assert.deepEqual(b.member.place("m.gguf"), { node: null, reason: "unavailable" });
});

test("keepLoading renews a long load's lease until stopped; a lost copy is reported", { skip }, async (t) => {
  const redis = await startRedis(t);
  const engine = { loadLeaseMs: 300 };
  const a = await startNode(t, redis.url, "a", { engine });
  const b = await startNode(t, redis.url, "b", { engine });
  const claim = await a.member.claim("big");
  assert.equal(claim.kind, "claimed");
  const token = claim.kind === "claimed" ? claim.copy.token : "";
  const stop = a.member.keepLoading("big", token, () => assert.fail("the copy was not lost"));
  await sleep(900);
  assert.equal((await b.member.claim("big")).kind, "held", "three leases later the load still holds the model");
  stop();
  await sleep(400);
  assert.equal((await b.member.claim("big")).kind, "claimed", "once renewals stop, the lease runs out");

  const other = await a.member.claim("other");
  const otherToken = other.kind === "claimed" ? other.copy.token : "";
  let lost = 0;
  const stopOther = a.member.keepLoading("other", otherToken, () => lost++);
  t.after(stopOther);
  await a.member.engine.release("other", otherToken); // as if pruned meanwhile
  await waitFor("the loss reported", () => lost === 1, 2000);
});

test("a node that starts while Redis is down serves alone, then joins when Redis comes up", { skip }, async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const [a, startMs] = await timed(startNode(t, redis.url, "a"));
  assert.ok(startMs < 2000, `start waited ${startMs} ms`);
  assert.equal(a.member.status, "degraded");
  assert.equal(a.warnings.length, 1);
  assert.equal((await a.member.claim("m")).kind, "local");
  await redis.restart();
  await waitFor("a joined", () => a.member.status === "joined", 3000);
  const b = await startNode(t, redis.url, "b");
  assert.deepEqual(states(b, "m"), [["a", "loading"]], "the load a started alone is published");
});

test("a delta saved after Redis restarted empty, before a heartbeat noticed, is counted once", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await startNode(t, redis.url, "a", { heartbeatMs: 60_000 });
  await a.save(usageDelta("m", 1));
  await redis.kill();
  await redis.restart();
  await waitFor("the connection back", () => a.member.engine.connected, 3000);
  assert.equal(a.member.status, "joined", "no call failed: the node has not noticed");
  // The merge finds another epoch: the delta stays pending and a heartbeat contributes the node's statistics instead.
  await a.save(usageDelta("m", 2));
  await waitFor("the node's statistics contributed", () => a.member.pendingDeltas === 0);
  assert.equal((await a.member.loadUsage())?.counters.hits, 3);
});

test("a node that joined with no statistics and restarts counts what it saved once", { skip }, async (t) => {
  const redis = await startRedis(t);
  // Its first start: no state file yet. It serves, saves and stops (its state file now holds what it saved).
  const first = await startNode(t, redis.url, "a");
  await first.save(usageDelta("m", 5));
  await waitFor("the delta merged", () => first.member.pendingDeltas === 0);
  await first.member.close({ leave: true });
  // Started again over that state file, on the same Redis: what it saved is in the fleet already.
  const again = await startNode(t, redis.url, "a", { local: first.local });
  await again.save(usageDelta("m", 1));
  await waitFor("the delta merged", () => again.member.pendingDeltas === 0);
  assert.equal((await again.member.loadUsage())?.counters.hits, 6);
});

test("a copy released while Redis hung is gone from the fleet once it answers again", { skip }, async (t) => {
  const { redis, a, b } = await twoNodes(t);
  const tokens = new Map<string, string>();
  for (const model of ["kept", "evicted"]) {
    const claim = await a.member.claim(model);
    assert.equal(claim.kind, "claimed");
    if (claim.kind === "claimed") {
      tokens.set(model, claim.copy.token);
      await a.member.promote(model, claim.copy.token);
    }
  }
  redis.signal("SIGSTOP");
  await waitFor("a degraded", () => a.member.status === "degraded", 3000);
  await a.member.release("evicted", tokens.get("evicted") as string);
  redis.signal("SIGCONT");
  await waitFor("a back", () => a.member.status === "joined", 3000);
  await waitFor("b to see the eviction", () => states(b, "evicted").length === 0);
  assert.deepEqual(states(b, "kept"), [["a", "ready"]]);
  assert.deepEqual(
    (await b.member.engine.snapshot()).copies.map((c) => [c.model, c.node]),
    [["kept", "a"]],
  );
});

test("a load whose copy Redis lost is published ready when it ends; hold() adds a second copy", { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await startNode(t, redis.url, "a", { engine: { loadLeaseMs: 300 } });
  const b = await startNode(t, redis.url, "b");
  const claim = await a.member.claim("m");
  assert.equal(claim.kind, "claimed");
  // No renewal: the loading lease runs out, and b's claim drops it and takes the load.
  await sleep(400);
  assert.equal((await b.member.claim("m")).kind, "claimed");
  await a.member.promote("m", a.member.ownCopy("m")!.token);
  await waitFor("a's ready copy beside b's loading one", () =>
    ["a:ready", "b:loading"].every((s) => states(b, "m").some(([n, st]) => `${n}:${st}` === s)),
  );
  // A load that goes on while another node holds the model publishes a second copy.
  const copy = await b.member.hold("x");
  assert.equal(copy.state, "loading");
  await a.member.claim("y");
  const held = await b.member.hold("y");
  assert.equal(b.member.ownCopy("y")?.token, held.token);
  await waitFor("both copies of y", () => states(a, "y").length === 2);
});
