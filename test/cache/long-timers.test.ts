/** Timers that cannot overflow (issue 14, item 2): the one chaining helper, and the cache's TTL / keep_alive / save timers through it. */
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import {
  longTimerClock,
  ManualClock,
  MAX_TIMER_MS,
  setLongTimeout,
  type TimerFunctions,
} from "../../src/cache/clock.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { backendSchema, cacheSchema, MAX_DURATION_SECONDS, serverSchema } from "../../src/config/schema.js";
import { parseKeepAlive } from "../../src/server/keep-alive.js";
import { cacheConfig, loadedNames, MemoryStateStore } from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** The global (mocked) timers, recording every delay handed to them. */
function recordingTimers(): TimerFunctions & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    setTimeout: (fn, ms) => {
      delays.push(ms);
      return setTimeout(fn, ms);
    },
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}

describe("setLongTimeout (node:test mock timers)", () => {
  it("a 30-day timer fires once, at 30 days, through platform timers of at most 2^31-1 ms", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const timers = recordingTimers();
    const fired = mock.fn();
    setLongTimeout(fired, 30 * DAY, timers);
    t.mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired.mock.callCount(), 0, "not at 24.8 days");
    t.mock.timers.tick(30 * DAY - MAX_TIMER_MS - 1);
    assert.equal(fired.mock.callCount(), 0, "not 1 ms early");
    t.mock.timers.tick(1);
    assert.equal(fired.mock.callCount(), 1);
    t.mock.timers.tick(60 * DAY);
    assert.equal(fired.mock.callCount(), 1, "once");
    assert.ok(timers.delays.length === 2 && timers.delays.every((d) => d <= MAX_TIMER_MS), String(timers.delays));
  });

  it("clear() cancels it in any link of the chain; short delays are one plain timer; Infinity never fires", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const timers = recordingTimers();
    const late = mock.fn();
    const timer = setLongTimeout(late, 100 * DAY, timers);
    t.mock.timers.tick(MAX_TIMER_MS + 5);
    timer.clear();
    t.mock.timers.tick(200 * DAY);
    assert.equal(late.mock.callCount(), 0);

    const short = mock.fn();
    const before = timers.delays.length;
    setLongTimeout(short, 250, timers);
    assert.deepEqual(timers.delays.slice(before), [250]);
    t.mock.timers.tick(250);
    assert.equal(short.mock.callCount(), 1);

    const never = mock.fn();
    const count = timers.delays.length;
    setLongTimeout(never, Number.POSITIVE_INFINITY, timers);
    assert.equal(timers.delays.length, count, "no platform timer at all");
  });

  it("with the real timers, a 30-day timer does not fire after 1 ms (where a bare setTimeout would)", async () => {
    const long = mock.fn();
    const timer = setLongTimeout(long, 30 * DAY);
    timer.unref();
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(long.mock.callCount(), 0);
    timer.clear();
  });
});

/** A manual clock whose timers overflow like Node's, with the cache's timers chained through `longTimerClock`. */
async function cacheOn(config: Parameters<typeof cacheConfig>[0], store: MemoryStateStore | null = null) {
  const manual = new ManualClock(undefined, { overflowLikeNode: true });
  const clock = longTimerClock(manual);
  const cache = await ModelCache.create(
    cacheConfig(config),
    backendSchema.parse({}),
    new FakeModelSource(["a.gguf", "b.gguf"]),
    {
      backends: { gguf: new FakeBackend({ timers: manual, defaults: { loadMs: 100 } }) },
      clock,
      store,
    },
  );
  return { cache, manual };
}

describe("the cache's long durations (a manual clock that overflows like Node's)", () => {
  it("the clock really overflows without the chaining: a bare 600 h timer fires after 1 ms", async () => {
    const manual = new ManualClock(undefined, { overflowLikeNode: true });
    const fired = mock.fn();
    manual.setTimeout(fired, 600 * HOUR);
    await manual.advance(1);
    assert.equal(fired.mock.callCount(), 1);
  });

  it('keep_alive "600h" keeps the model loaded 600 hours, then unloads it', async () => {
    const { cache, manual } = await cacheOn({ model_ttl_seconds: 60 });
    const keepAlive = parseKeepAlive("600h");
    (await manual.run(cache.acquire("a.gguf", { keepAlive }))).release();
    await manual.advance(600 * HOUR - 1);
    assert.equal(cache.loadedModels().length, 1, "still loaded 1 ms before 600 h");
    await manual.advance(1);
    assert.equal(cache.loadedModels().length, 0);
    assert.equal(cache.stats().evictions.ttl, 1);
  });

  it("a 30-day model_ttl_seconds (and per-model ttl_seconds) waits 30 days, not 1 ms", async () => {
    const { cache, manual } = await cacheOn({
      model_ttl_seconds: 30 * 86_400,
      models: { "b.gguf": { ttl_seconds: 40 * 86_400 } },
    });
    (await manual.run(cache.acquire("a.gguf"))).release();
    (await manual.run(cache.acquire("b.gguf"))).release();
    await manual.advance(29 * DAY);
    assert.equal(cache.loadedModels().length, 2);
    await manual.advance(DAY);
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
    await manual.advance(10 * DAY);
    assert.equal(cache.loadedModels().length, 0);
  });

  it("a 30-day persist_interval_seconds saves after 30 days, not every millisecond", async () => {
    const store = new MemoryStateStore();
    const { cache, manual } = await cacheOn({ persist_interval_seconds: 30 * 86_400 }, store);
    (await manual.run(cache.acquire("a.gguf"))).release();
    await manual.advance(29 * DAY);
    assert.equal(store.saves, 0);
    await manual.advance(DAY + 1000);
    assert.equal(store.saves, 1);
  });
});

describe("duration bounds in the schema and in keep_alive", () => {
  it("accepts up to MAX_DURATION_SECONDS (10 years) and refuses more, for every duration key", () => {
    assert.equal(MAX_DURATION_SECONDS, 315_360_000);
    for (const key of ["model_ttl_seconds", "persist_interval_seconds"]) {
      assert.equal(cacheSchema.safeParse({ [key]: MAX_DURATION_SECONDS }).success, true, key);
      assert.equal(cacheSchema.safeParse({ [key]: MAX_DURATION_SECONDS + 1 }).success, false, key);
    }
    assert.equal(
      cacheSchema.safeParse({ models: { "a.gguf": { ttl_seconds: MAX_DURATION_SECONDS + 1 } } }).success,
      false,
    );
    for (const key of ["keep_alive_min_seconds", "keep_alive_max_seconds"]) {
      assert.equal(serverSchema.safeParse({ [key]: MAX_DURATION_SECONDS }).success, true, key);
      assert.equal(serverSchema.safeParse({ [key]: 1e12 }).success, false, key);
    }
  });

  it("a request's keep_alive above 10 years is refused with the limit named; -1 stays forever", () => {
    assert.deepEqual(parseKeepAlive("600h"), { afterSeconds: 600 * 3600 });
    assert.throws(() => parseKeepAlive(1e12), /at most 315360000 seconds \(10 years\), or -1 for forever/);
    assert.throws(() => parseKeepAlive("99999999h"), /at most 315360000 seconds/);
    assert.equal(parseKeepAlive(-1), "forever");
  });
});
