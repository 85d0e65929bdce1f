/** The one median, the nearest-rank percentiles and the two ways of comparing a subject with a baseline. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { interleaved, median, percentile, ratioOfPercentiles, ratios, roundOrders, spreadOf } from "./stats.js";

it("median: the middle value, the mean of the two middle ones for an even count, NaN for none; input untouched", () => {
  const values = [5, 1, 3];
  assert.equal(median(values), 3);
  assert.deepEqual(values, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.ok(Number.isNaN(median([])));
});

it("percentile and spread by nearest rank: always one of the values", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile(values, 0), 1);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.deepEqual(spreadOf([4, 1, 3, 2]), { min: 1, p25: 1, p75: 3, max: 4 });
  assert.ok(Number.isNaN(percentile([], 50)));
});

it("the median of per-round ratios and the ratio of two percentiles differ, and each says which it is", () => {
  // A burst lands on round 3 of both variants: the paired ratios cancel it, the tails do not.
  const baseline = [10, 10, 40, 10];
  const subject = [11, 11, 44, 30];
  assert.deepEqual(ratios(subject, baseline), [1.1, 1.1, 1.1, 3]);
  assert.ok(Math.abs(median(ratios(subject, baseline)) - 1.1) < 1e-9);
  assert.equal(ratioOfPercentiles(subject, baseline, 99), 44 / 40);
  assert.throws(() => ratios([1, 2], [1]), /2 subject rounds vs 1 baseline rounds/);
});

it("roundOrders: every round a permutation, shuffled anew per round, the same for the same seed", () => {
  const orders = roundOrders(5, 40, 42);
  for (const order of orders) assert.deepEqual([...order].sort(), [0, 1, 2, 3, 4]);
  assert.ok(new Set(orders.map((o) => o.join())).size > 10, "rounds differ in order");
  // No fixed rotation: every variant leads some round.
  const firsts = new Set(orders.map((o) => o[0]));
  assert.equal(firsts.size, 5);
  assert.deepEqual(roundOrders(5, 40, 42), orders);
  assert.notDeepEqual(roundOrders(5, 40, 43), orders);
});

it("interleaved runs each variant once per round in the shuffled order, after the warm-up calls", async () => {
  const calls: number[] = [];
  const variants = [0, 1, 2].map((i) => async () => void calls.push(i));
  const times = await interleaved(variants, 6, { seed: 9, warmup: 1 });
  assert.deepEqual(calls.slice(0, 3), [0, 1, 2]);
  assert.deepEqual(calls.slice(3), roundOrders(3, 6, 9).flat());
  assert.ok(times.every((t) => t.length === 6));
});
