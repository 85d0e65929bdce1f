/** The one median, the nearest-rank percentiles and the two ways of comparing a subject with a baseline. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { median, percentile, ratioOfPercentiles, ratios, spreadOf } from "./stats.js";

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
