/**
 * Every model in its own process (backend.isolation = "process", the default), end to end: hosts killed mid-stream,
 * a model file overwritten while loaded, the memory limit on the OS-measured figure, and no host outliving the server.
 */
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { APIError } from "openai";
import { processMemory } from "../../src/backends/host/memory.js";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import type { CacheStats, LoadedModelInfo } from "../../src/cache/types.js";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { spawnInferno } from "../helpers/process.js";
import { metricSample, scrapeMetrics, startTestServer, type TestServer, testSetup, waitFor } from "../helpers/server.js";

const MIB = 1024 * 1024;
const GREEDY = { temperature: 0 };
/** The servers here run the default, model hosts (test servers otherwise run in process: see helpers/server.ts). */
const HOSTED = { isolation: "process" };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a process still runs: exists and is no zombie. A host whose parent was killed is re-parented to pid 1, which
 * in a container may never reap it: it has exited, but `kill(pid, 0)` still finds it.
 */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** Processes whose parent is `pid` (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

async function loaded(s: TestServer): Promise<LoadedModelInfo[]> {
  return (await s.getJson<{ data: LoadedModelInfo[] }>("/v1/cache/models")).body.data;
}

async function stats(s: TestServer): Promise<CacheStats> {
  return (await s.getJson<CacheStats>("/v1/cache/stats")).body;
}

describe("a model host that dies mid-stream", () => {
  it("SIGKILL, then SIGSEGV: the client gets an error event, the server stays healthy, another model answers at once, evictions.crashed counts it, the next request succeeds", async (t) => {
    const s = await startTestServer(t, {
      models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
      // Two crashes in a row here would start the repeated-crash cooldown (tested below): each crash stands alone.
      config: { cache: { enable_warmup: false, load_failure_cooldown_seconds: 0 }, backend: HOSTED },
    });
    const client = s.openai();
    await client.completions.create({ model: "b.gguf", prompt: "Hi", max_tokens: 1 });
    const bPid = (await loaded(s)).find((m) => m.name === "b.gguf")?.pid;
    assert.ok(bPid && alive(bPid), "b runs in a host of its own");

    let crashes = 0;
    for (const signal of ["SIGKILL", "SIGSEGV"] as const) {
      await client.completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 1 });
      const aPid = (await loaded(s)).find((m) => m.name === "a.gguf")?.pid as number;
      assert.ok(aPid !== bPid && alive(aPid));

      const stream = await client.completions.create({ model: "a.gguf", prompt: "Once", max_tokens: 400, stream: true, ...GREEDY });
      let chunks = 0;
      await assert.rejects(
        (async () => {
          for await (const _chunk of stream) if (++chunks === 1) process.kill(aPid, signal);
        })(),
        (error: Error) => {
          assert.ok(error instanceof APIError, String(error));
          assert.match(error.message, new RegExp(`model host of a\\.gguf \\(pid ${aPid}\\) was ended by signal ${signal}`));
          return true;
        },
      );
      assert.ok(chunks >= 1);
      crashes++;

      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      const other = await client.completions.create({ model: "b.gguf", prompt: "Once", max_tokens: 3, ...GREEDY });
      assert.ok(other.choices[0]?.text);
      await waitFor(async () => (await stats(s)).evictions.crashed === crashes);
      assert.deepEqual((await loaded(s)).map((m) => [m.name, m.pid]), [["b.gguf", bPid]], "b kept its host; a was unloaded");

      const again = await client.completions.create({ model: "a.gguf", prompt: "Once", max_tokens: 3, ...GREEDY });
      assert.equal(again.choices[0]?.finish_reason, "length");
    }
    assert.equal((await stats(s)).evictions.crashed, 2);
    assert.equal(metricSample(await scrapeMetrics(s.url), 'inferno_cache_evictions_total{reason="crashed"}'), 2);
    await s.runtime.cache.saveCache();
    const saved = await new FileStateStore(s.cacheDir).load();
    assert.equal(saved.state?.counters.evictions.crashed, 2, "the state file counts crashes too");
  });

  it("a request to a crashed model while it is gone is a 503 with Retry-After only under the repeated-crash cooldown", async (t) => {
    const s = await startTestServer(t, { config: { cache: { enable_warmup: false, load_failure_cooldown_seconds: 60 }, backend: HOSTED } });
    const client = s.openai();
    for (let i = 0; i < 2; i++) {
      await client.completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
      const pid = (await loaded(s))[0]?.pid as number;
      process.kill(pid, "SIGKILL");
      await waitFor(async () => (await stats(s)).evictions.crashed === i + 1);
    }
    const response = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 }),
    });
    assert.equal(response.status, 503);
    assert.ok(Number(response.headers.get("retry-after")) > 0);
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "model_load_cooldown");
  });
});

it("a model file overwritten in place while loaded (mmap on): the server survives and serves the new file", async (t) => {
  const s = await startTestServer(t, { config: { cache: { enable_warmup: false }, backend: { ...HOSTED, mmap: true } } });
  const client = s.openai();
  await client.completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  // A re-download over the old file: same inode, shorter content (q8_0 weights are a quarter of f32's).
  await writeFile(join(s.modelsDir, "tiny.gguf"), tinyLlamaGguf({ type: "q8_0", seed: 9 }));
  const outcomes: string[] = [];
  let served = false;
  for (let i = 0; i < 20 && !served; i++) {
    try {
      await client.completions.create({ model: "tiny.gguf", prompt: "Once upon a time", max_tokens: 8, ...GREEDY });
      outcomes.push("ok");
      served = (await stats(s)).loads >= 2; // answered by the reloaded model
    } catch (error) {
      assert.ok(error instanceof APIError && error.status === 503, `only a retryable 503 may happen: ${String(error)}`);
      outcomes.push(String((error.error as { code?: string } | undefined)?.code));
    }
    if (!served) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.ok(served, `outcomes: ${outcomes.join(", ")}`);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});

it("max_memory_mb holds on the memory the OS measures for the hosts, not on the estimate", async (t) => {
  // One host's measured memory, from a first server, sets a limit that two estimates fit in but two hosts do not.
  const probe = await startTestServer(t, { config: { cache: { enable_warmup: false, persist_cache: false }, backend: HOSTED } });
  await probe.openai().completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  const hostBytes = (await loaded(probe))[0]?.memory_bytes as number;
  const estimate = await probe.runtime.models.estimateMemory(await probe.runtime.models.resolve("tiny.gguf"), probe.runtime.config.backend);
  await probe.stop();
  const limitMb = Math.floor((1.5 * hostBytes) / MIB);
  assert.ok(2 * estimate < limitMb * MIB, `two estimates (${estimate} B each) fit in ${limitMb} MiB`);

  const s = await startTestServer(t, {
    models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
    config: { cache: { enable_warmup: false, max_memory_mb: limitMb }, backend: HOSTED },
  });
  const client = s.openai();
  await client.completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 1 });
  const [a] = await loaded(s);
  const measured = (await processMemory(a?.pid as number)) as number;
  assert.ok(Math.abs((a?.memory_bytes as number) - measured) / measured < 0.25, `${a?.memory_bytes} accounted vs ${measured} measured`);
  await client.completions.create({ model: "b.gguf", prompt: "Hi", max_tokens: 1 });
  await waitFor(async () => (await loaded(s)).length === 1);
  assert.deepEqual((await loaded(s)).map((m) => m.name), ["b.gguf"]);
  const after = await stats(s);
  assert.equal(after.evictions.capacity_memory, 1);
  assert.ok(after.memory_bytes <= after.memory_limit_bytes, `${after.memory_bytes} <= ${after.memory_limit_bytes}`);
});

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  it(`${signal} to the server leaves no model host alive after 2 s`, async (t) => {
    const setup = await testSetup(t, { config: { cache: { enable_warmup: false }, backend: HOSTED } });
    const server = spawnInferno(t, ["serve"], setup);
    const [, url] = await server.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 }),
    });
    assert.equal(response.status, 200);
    const modelPid = ((await (await fetch(`${url}/v1/cache/models`)).json()) as { data: LoadedModelInfo[] }).data[0]?.pid;
    const hosts = await childrenOf(server.child.pid as number);
    assert.ok(modelPid && hosts.includes(modelPid), `the model's host ${modelPid} is among the server's children ${hosts}`);
    const code = await server.stop(signal);
    if (signal === "SIGTERM") assert.equal(code, 0, server.stderr());
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const left: number[] = [];
    for (const pid of hosts) if (await running(pid)) left.push(pid);
    assert.deepEqual(left, [], "every host is gone");
  });
}
