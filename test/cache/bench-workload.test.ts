/** Keeps the eviction benchmark honest: it drives the real cache and counts every request (no timing asserted). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { compare, makeWorkload } from "../../bench/eviction.js";

it("the eviction benchmark runs both policies over the same requests and accounts for each one", async () => {
  const workload = makeWorkload("small", { seed: 7, count: 200, zipf: 1.0, shiftEvery: 0 });
  const result = await compare(workload);
  for (const r of [result.lru, result.costAware]) {
    assert.equal(r.hits + r.misses, 200);
    assert.ok(r.misses >= new Set(workload.requests).size, "every distinct model misses at least once");
    assert.ok(r.loadMsTotal > 0);
  }
  assert.equal(result.loadTimeRatio, result.costAware.loadMsTotal / result.lru.loadMsTotal);
});
