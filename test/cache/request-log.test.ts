/**
 * The request log (issue 13, `inferno cache advise`): a bounded ring of recent requests with their outcome and, for a
 * miss, the load time; saved with the statistics, restored at start, merged by time when two caches share one store;
 * `request_log_size = 0` logs nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/cache/clock.js";
import { decodeState, encodeState } from "../../src/cache/persistence/codec.js";
import type { CacheState } from "../../src/cache/persistence/types.js";
import {
  type LoggedRequest,
  mergeDelta,
  mergeRequestLogs,
  persistedLogOf,
  requestsOf,
} from "../../src/cache/persistence/merge.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { RequestLog } from "../../src/cache/usage.js";
import { harness, MemoryStateStore } from "../../testkit/cache-harness.js";

const T0 = Date.UTC(2026, 0, 1);
const req = (
  key: string,
  seconds: number,
  outcome: LoggedRequest["outcome"] = "hit",
  loadMs: number | null = null,
): LoggedRequest => ({
  key,
  at: T0 + seconds * 1000,
  outcome,
  loadMs,
});
/** The log as `key@second outcome[load ms]` strings, oldest first. */
const brief = (requests: readonly LoggedRequest[]) =>
  requests.map(
    (r) => `${r.key.replace(/^.*\//, "")}@${(r.at - T0) / 1000} ${r.outcome}${r.loadMs === null ? "" : ` ${r.loadMs}`}`,
  );

describe("the ring", () => {
  it("keeps the newest `capacity` requests, oldest first; a miss gets the time of the load it started", () => {
    const log = new RequestLog(3);
    log.record("a", T0, "miss");
    log.record("a", T0 + 1000, "coalesced");
    log.loaded("a", 250);
    log.record("b", T0 + 2000, "miss");
    log.loadFailed("b");
    log.loaded("b", 999); // a load nobody's miss is waiting for (warm-up, say): no request gets it
    log.record("a", T0 + 3000, "hit");
    assert.equal(log.size, 3);
    assert.deepEqual(brief(log.requests()), ["a@1 coalesced", "b@2 miss", "a@3 hit"]);
    const roundTrip = new RequestLog(10);
    roundTrip.restore(persistedLogOf([req("a", 0, "miss", 250), req("b", 1)]));
    assert.deepEqual(brief(roundTrip.requests()), ["a@0 miss 250", "b@1 hit"]);
  });

  it("a save sends only what was logged since the last one; removing a model forgets its requests", () => {
    const log = new RequestLog(4);
    log.record("a", T0, "miss");
    log.record("b", T0 + 1000, "miss");
    const first = log.takeDelta();
    assert.deepEqual(brief(requestsOf(first.log)), ["a@0 miss", "b@1 miss"]);
    first.commit();
    log.record("a", T0 + 2000, "hit");
    assert.deepEqual(brief(requestsOf(log.takeDelta().log)), ["a@2 hit"], "not committed: the next delta still has it");
    log.remove(new Set(["a"]));
    assert.deepEqual(brief(log.requests()), ["b@1 miss"]);
    assert.equal(log.takeDelta().log, undefined, "b was saved already; a's requests are gone");
  });

  it("merging two logs: by time, the stored one first at equal times, removed models left out, newest N kept", () => {
    const stored = persistedLogOf([req("a", 0), req("b", 2), req("c", 4)]);
    const added = persistedLogOf([req("x", 1), req("y", 2), req("z", 5)]);
    assert.deepEqual(brief(requestsOf(mergeRequestLogs(stored, added, 4, new Set(["c"])))), [
      "x@1 hit",
      "b@2 hit",
      "y@2 hit",
      "z@5 hit",
    ]);
    assert.equal(mergeRequestLogs(undefined, undefined, 10), undefined);
  });

  it("the codec keeps the log, reads files without one, and refuses a log whose columns disagree", () => {
    const state: CacheState = { saved_at: T0, counters: emptyCounters(), models: [] };
    assert.equal(decodeState(encodeState(state)).request_log, undefined, "a file from before the log reads as no log");
    const withLog = { ...state, request_log: persistedLogOf([req("/m/a.gguf", 0, "miss", 12.5), req("/m/a.gguf", 1)]) };
    assert.deepEqual(decodeState(encodeState(withLog)).request_log, withLog.request_log);
    const bad = (log: object) => () =>
      decodeState(encodeState({ ...state, request_log: { ...withLog.request_log, ...log } }));
    assert.throws(bad({ outcome: "m" }), { code: "state_corrupt", message: /columns differ in length/ });
    assert.throws(bad({ model: [0, 7] }), { code: "state_corrupt", message: /beyond keys/ });
    assert.throws(bad({ outcome: "mx" }), { code: "state_corrupt" });
    assert.throws(bad({ at: [T0, 1e300] }), { code: "state_corrupt" });
  });
});

describe("the cache's request log", () => {
  it("logs each request with its outcome and a miss's load time, and survives a save and a restart", async () => {
    const store = new MemoryStateStore();
    const clock = new ManualClock();
    const h = await harness({ store, clock, defaults: { loadMs: 120 } });
    const [a, b] = [h.cache.getModel("a.gguf"), h.cache.getModel("a.gguf")]; // the second joins the first's load
    await clock.run(Promise.all([a, b]));
    await clock.advance(1000);
    await clock.run(h.cache.getModel("a.gguf"));
    await clock.run(h.cache.getModel("b.gguf"));
    await h.cache.saveCache();
    const expected = ["a.gguf@0 miss 120", "a.gguf@0 coalesced", "a.gguf@1.12 hit", "b.gguf@1.12 miss 120"];
    assert.deepEqual(brief(requestsOf(store.state?.request_log)), expected);
    await h.cache.close();
    const again = await harness({ store, clock });
    await clock.run(again.cache.getModel("b.gguf"));
    await again.cache.saveCache();
    assert.deepEqual(brief(requestsOf(again.cache.snapshot().request_log)), [...expected, "b.gguf@1.24 miss 100"]);
    assert.deepEqual(
      brief(requestsOf(store.state?.request_log)),
      [...expected, "b.gguf@1.24 miss 100"],
      "restored requests are not saved twice",
    );
    await again.cache.close();
  });

  it("two caches on one store: the logs merge by time and the newest request_log_size are kept", async () => {
    const store = new MemoryStateStore();
    const clock = new ManualClock();
    const one = await harness({ store, clock, cache: { request_log_size: 3 }, defaults: { loadMs: 0 } });
    const two = await harness({ store, clock, cache: { request_log_size: 3 }, defaults: { loadMs: 0 } });
    for (const [cache, model] of [
      [one, "a.gguf"],
      [two, "b.gguf"],
      [one, "c.gguf"],
      [two, "d.gguf"],
      [one, "a.gguf"],
    ] as const) {
      await clock.run(cache.cache.getModel(model));
      await clock.advance(1000);
    }
    await two.cache.saveCache();
    await one.cache.saveCache();
    assert.deepEqual(brief(requestsOf(store.state?.request_log)), [
      "c.gguf@2 miss 0",
      "d.gguf@3 miss 0",
      "a.gguf@4 hit",
    ]);
    await one.cache.close();
    await two.cache.close();
  });

  it("request_log_size = 0 logs nothing, and leaves a log other processes saved as it is", async () => {
    const store = new MemoryStateStore();
    const clock = new ManualClock();
    const off = await harness({ store, clock, cache: { request_log_size: 0 } });
    await clock.run(off.cache.getModel("a.gguf"));
    await clock.run(off.cache.getModel("a.gguf"));
    await off.cache.saveCache();
    assert.equal(off.cache.snapshot().request_log, undefined);
    assert.equal(store.state?.request_log, undefined);
    assert.equal(store.state?.counters.hits, 1, "the statistics are kept all the same");
    // Another process logged requests; a save from the one with the log off keeps them.
    store.bytes = encodeState(
      mergeDelta(store.state, {
        ...emptyDelta(),
        request_log: persistedLogOf([req("/models/b.gguf", 1)]),
        request_log_size: 10,
      }),
    );
    await clock.run(off.cache.getModel("a.gguf"));
    await off.cache.saveCache();
    assert.deepEqual(brief(requestsOf(store.state?.request_log)), ["b.gguf@1 hit"]);
    await off.cache.close();
  });

  it("clearing the statistics clears the log; clearing one model's forgets only its requests", async () => {
    const store = new MemoryStateStore();
    const clock = new ManualClock();
    const h = await harness({ store, clock, defaults: { loadMs: 0 } });
    for (const model of ["a.gguf", "b.gguf", "a.gguf"]) await clock.run(h.cache.getModel(model));
    await h.cache.saveCache();
    await h.cache.clear({ model: "a.gguf", stats: true });
    await h.cache.saveCache();
    assert.deepEqual(brief(requestsOf(store.state?.request_log)), ["b.gguf@0 miss 0"]);
    await h.cache.clear({ stats: true });
    await h.cache.saveCache();
    assert.equal(store.state?.request_log, undefined);
    await h.cache.close();
  });
});

function emptyDelta() {
  return { at: T0, half_life_hours: 24, reset_all: false, removed: [], counters: emptyCounters(), models: [] };
}
