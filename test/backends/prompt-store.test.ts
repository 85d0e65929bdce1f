/**
 * The prompt store on real llama.cpp (generated nano llamas): prefixes saved when a model unloads are restored when it
 * loads again (counted through the backend), with the same greedy answer; states of another model or context size,
 * corrupt or truncated ones, and ones a loader died on are refused and quarantined, in process and in a model host;
 * the budget holds.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { HostedBackend } from "../../src/backends/hosted.js";
import { LlamaBackend } from "../../src/backends/llama.js";
import { overBudget, prefixValue } from "../../src/backends/prompt-store.js";
import type { Backend, LoadOptions, PromptStoreEvent, TextModel } from "../../src/backends/types.js";
import { writeTinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { hostBundle } from "../../testkit/host-bundle.js";
import { TEST_BACKEND } from "../../testkit/models.js";

const config = { ...TEST_BACKEND, context_size: 512 };
const greedy = { temperature: 0, maxTokens: 8 };
/** A prompt long enough to be saved (at least 32 tokens), and its continuation. */
const SYSTEM =
  "You are the keeper of an old lighthouse on a rocky island. Every night you climb the stairs, count the steps, " +
  "light the lamp, listen to the sea and write down the ships that pass, their flags, their course and the weather.";
const next = (n: number) => `${SYSTEM} Night ${n}: what did you see?`;

let dir: string;
let manager: ModelManager;
const llama = new LlamaBackend();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "inferno-prompt-store-"));
  await writeTinyLlamaGguf(join(dir, "models", "a.gguf"), { preset: "nano", type: "f32", seed: 1 });
  await writeTinyLlamaGguf(join(dir, "models", "b.gguf"), { preset: "nano", type: "f32", seed: 2 });
  manager = new ModelManager(join(dir, "models"));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A cache directory of its own for one test. */
let dirs = 0;
const cacheDir = () => join(dir, `cache-${++dirs}`);

async function load(
  backend: Backend,
  name: string,
  cache: string,
  options: Partial<LoadOptions> & { budgetMb?: number } = {},
): Promise<{ model: TextModel; events: PromptStoreEvent[] }> {
  const events: PromptStoreEvent[] = [];
  const budgetBytes = (options.budgetMb ?? 64) * 1024 * 1024;
  const model = (await backend.load(await manager.resolve(name), {
    backend: options.backend ?? config,
    promptStore: { cacheDir: cache, budgetBytes },
  })) as TextModel;
  model.onPromptStore?.((event) => events.push(event));
  return { model, events };
}

const prompts = (cache: string) => join(cache, "prompts");
const files = async (cache: string, ext: string) => (await readdir(prompts(cache))).filter((f) => f.endsWith(ext));

/** Saves one prefix of model `name` (used twice, so it is worth something) and returns the fresh answer to `next(2)`. */
async function saveOne(
  backend: Backend,
  name: string,
  cache: string,
  options: Partial<LoadOptions> = {},
): Promise<string> {
  const { model, events } = await load(backend, name, cache, options);
  const fresh = await model.complete(next(2), { ...greedy, cachePrompt: false });
  await model.complete(next(1), greedy);
  await model.dispose();
  assert.deepEqual(
    events.map((e) => e.action),
    ["saved"],
  );
  return fresh.text;
}

/**
 * Loads model a again and asks `next(2)`: the saved prefix is restored (all the shared tokens count as cached), the
 * answer is `fresh`, and the unload saves what the sequence then holds beside it (it does not extend the restored one).
 */
async function restoredTurn(backend: Backend, cache: string, fresh: string, config?: LoadOptions["backend"]) {
  const { model, events } = await load(backend, "a", cache, config ? { backend: config } : {});
  try {
    const result = await model.complete(next(2), greedy);
    const shared = (await model.tokenize(`${SYSTEM} Night`)).length;
    assert.ok((result.usage.cachedPromptTokens ?? 0) >= shared - 1, JSON.stringify(result.usage));
    assert.equal(result.text, fresh);
  } finally {
    await model.dispose();
  }
  assert.deepEqual(
    events.map((e) => e.action),
    ["restored", "saved"],
  );
}

describe("prompt store, in process", () => {
  test("unload + reload restores the saved prefix: only the new tokens are evaluated, the same greedy answer", async () => {
    const cache = cacheDir();
    const fresh = await saveOne(llama, "a", cache);
    const [state] = await files(cache, ".state");
    assert.ok(state);
    assert.equal((await stat(join(prompts(cache), state))).mode & 0o777, 0o600);
    const [sidecar] = await files(cache, ".json");
    assert.equal((await stat(join(prompts(cache), sidecar as string))).mode & 0o777, 0o600);

    await restoredTurn(llama, cache, fresh);
    assert.equal((await files(cache, ".state")).length, 2);
  });

  test("warm() restores the hottest saved prefix before any request", async () => {
    const cache = cacheDir();
    await saveOne(llama, "a", cache);
    const { model, events } = await load(llama, "a", cache);
    try {
      await model.warm?.();
      assert.deepEqual(
        events.map((e) => e.action),
        ["restored"],
      );
      const result = await model.complete(next(3), greedy);
      assert.ok((result.usage.cachedPromptTokens ?? 0) > 32, JSON.stringify(result.usage));
      assert.equal(events.length, 1, "no second restore");
    } finally {
      await model.dispose();
    }
  });

  test("a state saved with another context size is not loaded, and left for that size", async () => {
    // The same file under another setting (a request's own `num_ctx` loads a cache entry of its own): that load's.
    const cache = cacheDir();
    await saveOne(llama, "a", cache);
    const { model, events } = await load(llama, "a", cache, { backend: { ...config, context_size: 256 } });
    try {
      assert.deepEqual(events, []);
      const result = await model.complete(next(2), greedy);
      assert.equal(result.usage.cachedPromptTokens, 0);
    } finally {
      await model.dispose();
    }
    assert.deepEqual(await readdir(join(prompts(cache), "quarantine")).catch(() => []), []);
    const { model: back, events: restored } = await load(llama, "a", cache);
    try {
      const result = await back.complete(next(2), greedy);
      assert.ok((result.usage.cachedPromptTokens ?? 0) > 32, JSON.stringify(result.usage));
      assert.equal(
        restored.find((e) => e.action === "quarantined"),
        undefined,
      );
    } finally {
      await back.dispose();
    }
  });

  test("a state saved with another sequence count is not offered to llama.cpp, and left for that count", async () => {
    // `inferno run` loads one sequence, `inferno serve` several: llama.cpp cannot load a state across that change
    // ("n_stream mismatch" on stderr), so the binding names the count and the scan passes over the state at load.
    const cache = cacheDir();
    const { model: one } = await load(llama, "a", cache, { backend: { ...config, parallel: 1 } });
    await one.complete(next(1), greedy);
    await one.dispose();
    assert.equal((await files(cache, ".state")).length, 1);
    const { model, events } = await load(llama, "a", cache, { backend: { ...config, parallel: 2 } });
    try {
      assert.deepEqual(events, []);
      assert.equal((await model.complete(next(2), greedy)).usage.cachedPromptTokens, 0);
    } finally {
      await model.dispose();
    }
  });

  test("a state of another model put in its place is refused and quarantined", async () => {
    const cache = cacheDir();
    await saveOne(llama, "a", cache);
    // Model b's tag on model a's files: what a copy or a mix-up would leave.
    const { model: b } = await load(llama, "b", cache);
    await b.dispose();
    const bTag = createTag((await manager.resolve("b")).key);
    for (const file of await readdir(prompts(cache))) {
      if (file === "quarantine" || !/\.(json|state)$/.test(file)) continue;
      const renamed = `${bTag}${file.slice(file.indexOf("-"))}`;
      await writeFile(join(prompts(cache), renamed), await readFile(join(prompts(cache), file)));
    }
    const { model, events } = await load(llama, "b", cache);
    try {
      assert.deepEqual(
        events.map((e) => e.action),
        ["quarantined"],
      );
      assert.equal((await model.complete(next(2), greedy)).usage.cachedPromptTokens, 0);
    } finally {
      await model.dispose();
    }
  });

  test("a corrupt state is refused when a request would restore it; a truncated one at the scan", async () => {
    const cache = cacheDir();
    const fresh = await saveOne(llama, "a", cache);
    const [state] = await files(cache, ".state");
    const path = join(prompts(cache), state as string);
    const bytes = await readFile(path);
    bytes.fill(0x5a, 64, 4096);
    await writeFile(path, bytes);
    const { model, events } = await load(llama, "a", cache);
    try {
      const result = await model.complete(next(2), greedy);
      assert.equal(result.usage.cachedPromptTokens, 0);
      assert.equal(result.text, fresh);
      assert.equal(events[0]?.action, "quarantined");
      assert.match(events[0]?.reason ?? "", /sha256/);
    } finally {
      await model.dispose();
    }
    // A truncated state: found at the next load's scan.
    const [again] = await files(cache, ".state");
    await truncate(join(prompts(cache), again as string), 1000);
    const second = await load(llama, "a", cache);
    await second.model.dispose();
    assert.equal(second.events[0]?.action, "quarantined");
    assert.match(second.events[0]?.reason ?? "", /bytes/);
  });

  test("the budget holds: the least valuable prefix goes first", async () => {
    const cache = cacheDir();
    const oneSequence = { backend: { ...config, parallel: 1 } };
    await saveOne(llama, "a", cache, oneSequence);
    const one = (await stat(join(prompts(cache), (await files(cache, ".state"))[0] as string))).size;
    // Room for one state: saving a second, more valuable prefix evicts the first.
    const budgetMb = (one * 1.9) / (1024 * 1024);
    const { model, events } = await load(llama, "a", cache, { budgetMb, ...oneSequence });
    const other = SYSTEM.split(" ").reverse().join(" ");
    for (let i = 0; i < 4; i++) await model.complete(`${other} ${i}`, greedy);
    await model.dispose();
    assert.deepEqual(
      events.map((e) => [e.action, e.reason ?? null]),
      [
        ["saved", null],
        ["evicted", "budget"],
      ],
    );
    assert.equal((await files(cache, ".state")).length, 1);
    assert.ok(events[1] && events[1].diskBytes <= budgetMb * 1024 * 1024);
  });
});

test("overBudget: the lowest value first, then the oldest, until the rest fits", () => {
  const e = (name: string, bytes: number, reuses: number, tokens: number, savedAt: string) => ({
    name,
    bytes,
    value: prefixValue({ reuses, tokens }),
    savedAt,
  });
  const entries = [
    e("hot", 40, 5, 100, "2026-01-01"),
    e("cold", 40, 0, 100, "2026-01-02"),
    e("old", 40, 0, 100, "2026-01-01"),
  ];
  const names = (budget: number) => overBudget(entries, budget).map((v) => v.name);
  assert.deepEqual(names(120), []);
  assert.deepEqual(names(80), ["old"]);
  assert.deepEqual(names(40), ["old", "cold"]);
  assert.deepEqual(names(0), ["old", "cold", "hot"]);
});

describe("prompt store, in a model host", () => {
  // The bundled entry (no tsx start per host); a spare host starts while the previous one works.
  let hosted: HostedBackend;
  before(async () => {
    hosted = new HostedBackend("gguf", { entry: await hostBundle() });
  });
  const hostConfig = { ...config, isolation: "process" as const };
  after(() => hosted.dispose());

  test("saved on the host's unload, restored by the next host; corrupt states and one a host died on never crash it", async () => {
    const cache = cacheDir();
    const fresh = await saveOne(hosted, "a", cache);
    await restoredTurn(hosted, cache, fresh, hostConfig);
    // Two states now: one corrupt, the other with the marker a host killed inside llama.cpp's load leaves (its pid,
    // no longer running).
    const [corrupt, diedOn] = (await files(cache, ".state")).map((f) => join(prompts(cache), f));
    const bytes = await readFile(corrupt as string);
    bytes.fill(0xff, 32);
    await writeFile(corrupt as string, bytes);
    await writeFile((diedOn as string).replace(/\.state$/, ".restoring"), "2147483646");
    const second = await load(hosted, "a", cache, { backend: hostConfig });
    try {
      const result = await second.model.complete(next(2), greedy);
      assert.equal(result.usage.cachedPromptTokens, 0);
      assert.equal(result.text, fresh);
    } finally {
      await second.model.dispose();
    }
    const reasons = second.events.filter((e) => e.action === "quarantined").map((e) => e.reason);
    assert.equal(reasons.length, 2, JSON.stringify(second.events));
    assert.ok(reasons.some((r) => /loader died/.test(r ?? "")) && reasons.some((r) => /sha256/.test(r ?? "")));
  });
});

/** The store's file prefix for a model (its key's hash). */
function createTag(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 12);
}
