/** The copies rule, routing over copies and spare copies: pure functions, tested by tables. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { asSpareCopy, chooseVictims, type EvictionCandidate } from "../../src/cache/policy/eviction.js";
import {
  addCopy,
  copiesFacts,
  type CopiesFacts,
  contended,
  copiesRule,
  type CopyView,
  countUse,
  DEFAULT_MAX_COPIES,
  eligibleNodes,
  fleetHasRoom,
  isExtraCopy,
  pickCopy,
  ratePerMinute,
  recordUse,
  usedRegularly,
  wantedCopies,
} from "../../src/fleet/copies.js";
import { placementNode } from "./fleet-helpers.js";

const MINUTE = 60_000;
const T = Date.UTC(2026, 0, 1);
const GiB = 2 ** 30;

test("a use streak: regular once used now and for 7 minutes without a 40-minute pause", () => {
  const uses = (minutes: number[]) => minutes.reduce((s, m) => recordUse(s, T + m * MINUTE), recordUse(null, T));
  const cases: Array<{ name: string; uses: number[]; at: number; regular: boolean }> = [
    { name: "one use", uses: [], at: 0, regular: false },
    { name: "used for 5 minutes", uses: [2, 5], at: 5, regular: false },
    { name: "used every 3 minutes for 9 minutes", uses: [3, 6, 9], at: 9, regular: true },
    { name: "two uses 30 minutes apart (within the 40-minute gap)", uses: [30], at: 30, regular: true },
    { name: "two uses 45 minutes apart: a new streak", uses: [45], at: 45, regular: false },
    { name: "regular, but not used in the last minute", uses: [3, 6, 9], at: 11, regular: false },
  ];
  for (const c of cases) assert.equal(usedRegularly(uses(c.uses), T + c.at * MINUTE), c.regular, c.name);
  assert.equal(usedRegularly(null, T), false);
  // A node's count of a model's requests keeps the times and the streak together.
  const use = { recent: [], streak: null };
  for (const m of [0, 3, 6, 9]) countUse(use, T + m * MINUTE);
  assert.deepEqual(use, {
    recent: [0, 3, 6, 9].map((m) => T + m * MINUTE),
    streak: { since: T, last: T + 9 * MINUTE },
  });
});

test("requests per minute over the last 20 s: older times are dropped", () => {
  const recent = [T - 30_000, T - 19_000, T - 5000, T];
  assert.equal(ratePerMinute(recent, T), 9, "3 requests in 20 s");
  assert.deepEqual(recent, [T - 19_000, T - 5000, T]);
  assert.equal(ratePerMinute(recent, T + 20_000), 0);
  assert.deepEqual(recent, []);
});

test("the rule from the per-model settings: pinned means at least one copy", () => {
  assert.deepEqual(copiesRule(undefined, 60), { minCopies: 0, maxCopies: DEFAULT_MAX_COPIES, scaleUpRpm: 60 });
  assert.deepEqual(copiesRule({ pinned: true }, 60), { minCopies: 1, maxCopies: DEFAULT_MAX_COPIES, scaleUpRpm: 60 });
  assert.deepEqual(copiesRule({ min_copies: 2, max_copies: 3 }, 30), { minCopies: 2, maxCopies: 3, scaleUpRpm: 30 });
  // max_copies below min_copies cannot hold: the minimum wins.
  assert.deepEqual(copiesRule({ min_copies: 3, max_copies: 2 }, 30).maxCopies, 3);
});

test("copies wanted: one by default, two for regular use with room, more above scale_up_rpm, capped", () => {
  const facts = (f: Partial<CopiesFacts>): CopiesFacts => ({
    rpm: 1,
    regular: false,
    room: true,
    contended: false,
    eligibleNodes: 8,
    ...f,
  });
  const rule = copiesRule(undefined, 60);
  const cases: Array<{
    name: string;
    facts: Partial<CopiesFacts>;
    rule?: ReturnType<typeof copiesRule>;
    want: number;
  }> = [
    { name: "nobody asks, nothing pins", facts: { rpm: 0 }, want: 0 },
    { name: "asked, not regular", facts: {}, want: 1 },
    { name: "regular, the fleet has room", facts: { regular: true }, want: 2 },
    { name: "regular, the fleet is full", facts: { regular: true, room: false }, want: 1 },
    { name: "130 rpm at 60 per copy, room: three", facts: { rpm: 130 }, want: 3 },
    { name: "130 rpm, full, copies busy: three", facts: { rpm: 130, room: false, contended: true }, want: 3 },
    // Fast one-at-a-time requests: a high rate, but no request ever waits; a copy would only evict a model.
    { name: "130 rpm, full, no request waits: one", facts: { rpm: 130, room: false }, want: 1 },
    { name: "regular, full, no request waits: one", facts: { rpm: 130, regular: true, room: false }, want: 1 },
    { name: "1000 rpm: capped at max_copies", facts: { rpm: 1000 }, want: DEFAULT_MAX_COPIES },
    { name: "1000 rpm on a 2-node fleet: two", facts: { rpm: 1000, eligibleNodes: 2 }, want: 2 },
    { name: "min_copies 2 with no traffic", facts: { rpm: 0 }, rule: copiesRule({ min_copies: 2 }), want: 2 },
    { name: "pinned with no traffic", facts: { rpm: 0 }, rule: copiesRule({ pinned: true }), want: 1 },
    { name: "max_copies 1 however busy", facts: { rpm: 500 }, rule: copiesRule({ max_copies: 1 }), want: 1 },
    { name: "scale_up_rpm 0: no rate copies", facts: { rpm: 500 }, rule: copiesRule(undefined, 0), want: 1 },
  ];
  for (const c of cases) assert.equal(wantedCopies(facts(c.facts), c.rule ?? rule), c.want, c.name);
});

test("copies are contended when more requests are in flight than there are copies", () => {
  const copy = (node: string, queue: number) => ({ node, since: 0, queue });
  const cases: Array<{ copies: Array<ReturnType<typeof copy>>; want: boolean }> = [
    { copies: [], want: false },
    { copies: [copy("a", 0)], want: false },
    { copies: [copy("a", 1)], want: false },
    { copies: [copy("a", 2)], want: true },
    { copies: [copy("a", 1), copy("b", 1)], want: false },
    { copies: [copy("a", 3), copy("b", 0)], want: true },
  ];
  for (const c of cases) assert.equal(contended(c.copies), c.want, JSON.stringify(c.copies));
});

test("a copy is added one at a time, only beside a live one", () => {
  assert.equal(addCopy(1, 0, 2), true);
  assert.equal(addCopy(1, 1, 2), false, "the second copy is still loading");
  assert.equal(addCopy(2, 0, 2), false);
  assert.equal(addCopy(0, 0, 2), false, "no copy: that is a miss, not a copy");
});

test("room and eligible nodes, from placement's candidates", () => {
  const node = placementNode;
  const full = node("full", { modelCount: 2 });
  const tight = node("tight", { memoryUsed: 7.5 * GiB, modelCount: 1 });
  const draining = node("draining", { draining: true });
  const noFile = node("nofile", { serves: undefined });
  assert.equal(fleetHasRoom([full, tight, draining, noFile], new Set()), false);
  assert.equal(fleetHasRoom([full, node("free")], new Set()), true);
  assert.equal(fleetHasRoom([full, node("free")], new Set(["free"])), false, "a holder's room does not count");
  // A slot and memory on one node, but the fleet's memory 90 % used: full for a copy.
  const busy = (id: string) => node(id, { memoryUsed: 7.6 * GiB, modelCount: 1 });
  assert.equal(fleetHasRoom([busy("x"), busy("y"), node("z", { memoryUsed: 6.4 * GiB })], new Set()), false);
  assert.equal(fleetHasRoom([busy("x"), node("z", { memoryUsed: 6.4 * GiB })], new Set()), true);
  assert.equal(eligibleNodes([full, tight, draining, noFile, node("big", { memoryCapacity: GiB / 2 })]), 2);
  // The rule's facts from them: regular by the streak, room and eligible nodes by the candidates beside the holders,
  // contended by the holders' queues.
  const streak = { since: T, last: T + 9 * MINUTE };
  const held = [{ node: "full", since: T, queue: 0 }];
  assert.deepEqual(copiesFacts({ rpm: 3, streak }, held, [full, node("free")], T + 9 * MINUTE), {
    rpm: 3,
    regular: true,
    room: true,
    contended: false,
    eligibleNodes: 2,
  });
  const waiting = [{ node: "full", since: T, queue: 3 }];
  assert.equal(copiesFacts({ rpm: 3, streak }, waiting, [full], T).contended, true, "requests wait for the one copy");
  assert.equal(copiesFacts({ rpm: 0, streak: null }, [], [full], T, 5).eligibleNodes, 5, "eligible as given");
});

test("extra copies: the oldest copies stay, the younger ones beyond the wanted count are extra", () => {
  const copies: CopyView[] = [
    { node: "b", since: 200, queue: 0 },
    { node: "a", since: 100, queue: 0 },
    { node: "c", since: 300, queue: 0 },
  ];
  const cases: Array<{ wanted: number; extra: string[] }> = [
    { wanted: 3, extra: [] },
    { wanted: 2, extra: ["c"] },
    { wanted: 1, extra: ["b", "c"] },
    // Nobody asks: one copy stays all the same (it goes by the node's own eviction, never as a spare).
    { wanted: 0, extra: ["b", "c"] },
  ];
  for (const c of cases) {
    const extra = ["a", "b", "c"].filter((n) => isExtraCopy(copies, c.wanted, n));
    assert.deepEqual(extra, c.extra, `wanted ${c.wanted}`);
  }
  assert.equal(isExtraCopy(copies, 1, "d"), false, "a node without a copy has no extra");
  assert.equal(isExtraCopy([{ node: "a", since: 1, queue: 0 }], 0, "a"), false, "a sole copy is never extra");
});

test("routing over copies: the shortest queue, then the receiving node's own copy, then the oldest", () => {
  const copy = (node: string, since: number, queue: number): CopyView => ({ node, since, queue });
  const cases: Array<{ name: string; copies: CopyView[]; receivedBy: string; want: string | undefined }> = [
    { name: "no copy", copies: [], receivedBy: "a", want: undefined },
    { name: "shortest queue", copies: [copy("a", 1, 3), copy("b", 2, 1), copy("c", 3, 2)], receivedBy: "a", want: "b" },
    { name: "own copy among equals", copies: [copy("a", 1, 1), copy("b", 2, 1)], receivedBy: "b", want: "b" },
    { name: "oldest among equals elsewhere", copies: [copy("b", 5, 0), copy("c", 2, 0)], receivedBy: "a", want: "c" },
    { name: "own copy busier: elsewhere", copies: [copy("a", 1, 2), copy("b", 2, 0)], receivedBy: "a", want: "b" },
  ];
  for (const c of cases) assert.equal(pickCopy(c.copies, c.receivedBy)?.node, c.want, c.name);
});

test("a spare copy goes first under every policy", () => {
  const candidate = (key: string, frequency: number, lastUsedAt: number): EvictionCandidate => ({
    key,
    lastUsedAt,
    memoryBytes: GiB,
    loadMs: 1000,
    frequency,
    inflation: 0,
  });
  for (const policy of ["lru", "cost-aware", "reload-cost"] as const) {
    const candidates = [candidate("cold", 1, T), asSpareCopy(candidate("hot", 50, T + MINUTE))];
    const { victims } = chooseVictims(candidates, { count: 1, bytes: 0 }, policy, { maxModels: 2, maxMemoryBytes: 0 });
    assert.deepEqual(
      victims.map((v) => v.key),
      ["hot"],
      policy,
    );
  }
});
