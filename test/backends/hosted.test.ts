/**
 * Model hosts (backend.isolation = "process") on real llama.cpp: what crosses the pipe, streaming and abort, the spare
 * host, memory from the OS, and every way a host can end badly — killed, undecodable message, no answer to a load.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { HostedBackend } from "../../src/backends/hosted.js";
import { processMemory } from "../../src/backends/host/memory.js";
import { LlamaBackend } from "../../src/backends/llama.js";
import type { TextModel } from "../../src/backends/types.js";
import {
  ContextLengthExceeded,
  Disposed,
  ModelCrashed,
  ModelLoadFailed,
  ModelLoadTimeout,
} from "../../src/errors/index.js";
import { hostBundle } from "../../testkit/host-bundle.js";
import { FileLlamas, TEST_BACKEND } from "../../testkit/models.js";
import { alive, gone } from "../../testkit/process.js";
import { writeFile } from "node:fs/promises";

const config = { ...TEST_BACKEND, isolation: "process" as const };
const MISBEHAVING = fileURLToPath(new URL("../../testkit/host-misbehaving.ts", import.meta.url));
const llamas = new FileLlamas({ "nano.gguf": { preset: "nano", type: "f32" } });
before(() => llamas.setUp());
after(() => llamas.cleanUp());

describe("a model in a host", () => {
  // Hosts from the bundled entry, without tsx (testkit/host-bundle.ts): hosts from the source under tsx run in
  // test/server/isolation-shutdown.test.ts and isolation-memory.test.ts.
  let hosted: HostedBackend;
  const local = new LlamaBackend();
  let model: TextModel;
  let inProcess: TextModel;
  /** The spare `ready()` started, and the one started after the first load. */
  let readyPid: number | null;
  let sparePid: number | null;

  before(async () => {
    hosted = new HostedBackend("gguf", { entry: await hostBundle() });
    const descriptor = await llamas.manager.resolve("nano.gguf");
    await hosted.ready(config);
    readyPid = hosted.sparePid;
    model = (await hosted.load(descriptor, { backend: config })) as TextModel;
    assert.equal(hosted.sparePid, null, "the next spare starts after the load's caller had its turn");
    await new Promise(setImmediate);
    sparePid = hosted.sparePid;
    inProcess = (await local.load(descriptor, { backend: { ...config, isolation: "in-process" } })) as TextModel;
  });
  after(async () => {
    await model.dispose();
    await inProcess.dispose();
    await hosted.dispose();
    await local.dispose();
  });

  test("options and results cross as they are: the same greedy text, stop strings, usage, chat, tokens and embeddings", async () => {
    const options = { maxTokens: 12, temperature: 0 };
    assert.deepEqual(
      await model.complete("Once upon a time", options),
      await inProcess.complete("Once upon a time", options),
    );
    // Both models get every call, in the same order: each holds the same prompts in the same sequences, so a later
    // test's `usage.cachedPromptTokens` (what a sequence kept) is the same on both sides.
    const free = await model.complete("Once upon a time", { maxTokens: 24, temperature: 0 });
    assert.deepEqual(free, await inProcess.complete("Once upon a time", { maxTokens: 24, temperature: 0 }));
    const stop = free.text.slice(6, 9);
    const stopped = await model.complete("Once upon a time", { maxTokens: 24, temperature: 0, stop: [stop] });
    assert.deepEqual(
      stopped,
      await inProcess.complete("Once upon a time", { maxTokens: 24, temperature: 0, stop: [stop] }),
    );
    assert.equal(stopped.finishReason, "stop");
    const chat = [{ role: "user" as const, content: "Say hello" }];
    assert.deepEqual(
      await model.chat(chat, { maxTokens: 5, temperature: 0 }),
      await inProcess.chat(chat, { maxTokens: 5, temperature: 0 }),
    );
    // Structured output and the sampling fields cross too (plain data).
    const schema = { type: "object", properties: { answer: { enum: ["yes", "no"] } }, required: ["answer"] };
    const shaped = {
      maxTokens: 40,
      temperature: 0.8,
      seed: 3,
      topK: 20,
      minP: 0.05,
      format: { type: "json_schema" as const, schema },
    };
    const structured = await model.chat(chat, shaped);
    assert.deepEqual(structured, await inProcess.chat(chat, shaped));
    assert.ok(["yes", "no"].includes((JSON.parse(structured.text) as { answer: string }).answer));
    assert.deepEqual(await model.tokenize("hello world"), await inProcess.tokenize("hello world"));
    assert.deepEqual(await model.embed(["hello", "world"]), await inProcess.embed(["hello", "world"]));
  });

  test("the context rule crosses: the same typed refusal of an over-long prompt, the same truncation", async () => {
    const long = "word ".repeat(400);
    const refusal = (error: unknown) => {
      assert.ok(error instanceof ContextLengthExceeded, String(error));
      assert.equal(error.details?.param, "prompt[3]");
      return true;
    };
    await assert.rejects(model.complete(long, { maxTokens: 2, promptParam: "prompt[3]" }), refusal);
    await assert.rejects(inProcess.complete(long, { maxTokens: 2, promptParam: "prompt[3]" }), refusal);
    const cut = { maxTokens: 2, temperature: 0, truncatePromptTokens: 30 };
    assert.deepEqual(await model.complete(long, cut), await inProcess.complete(long, cut));
    await assert.rejects(model.embed(["a", long]), ContextLengthExceeded);
    const embedCut = { truncatePromptTokens: -1 };
    assert.deepEqual(
      await model.embed(["a", long], undefined, embedCut),
      await inProcess.embed(["a", long], undefined, embedCut),
    );
  });

  test("streams: the pieces make up the text; an abort mid-stream ends it with what was generated", async () => {
    const pieces: string[] = [];
    const result = await model.complete("Once", { maxTokens: 16, temperature: 0, onText: (t) => pieces.push(t) });
    assert.ok(pieces.length > 1, `${pieces.length} pieces`);
    assert.equal(pieces.join(""), result.text);
    const controller = new AbortController();
    const aborted = await model.complete("Once", {
      maxTokens: 400,
      temperature: 0,
      signal: controller.signal,
      onText: () => controller.abort(),
    });
    assert.equal(aborted.finishReason, "abort");
    assert.ok(aborted.usage.completionTokens < 400);
  });

  test("memory is what the OS measures for the host; the spare host was ready and the next load takes it", async () => {
    assert.ok(alive(model.pid as number));
    const measured = (await processMemory(model.pid as number)) as number;
    assert.ok(Math.abs(model.memoryBytes - measured) / measured < 0.25, `${model.memoryBytes} vs ${measured}`);
    assert.ok(model.memoryBytes > (await llamas.manager.resolve("nano.gguf")).fingerprint.size);
    assert.ok(
      readyPid !== null && readyPid === model.pid,
      "ready() started the spare host and the first load ran in it",
    );
    assert.ok(sparePid !== null && sparePid !== model.pid, "a spare was started after the load");
    const second = (await hosted.load(await llamas.manager.resolve("nano.gguf"), { backend: config })) as TextModel;
    try {
      assert.equal(second.pid, sparePid, "the load ran in the spare host");
    } finally {
      await second.dispose();
    }
    assert.ok(await gone(sparePid), "disposing a model ends its host");
  });

  test("a host killed mid-stream: the call fails with ModelCrashed, crashed settles, later calls fail alike", async () => {
    // A long generation (the nano model samples a token in ~0.5 ms; 256 tokens could end before a starved test process
    // gets to kill the host), so the kill lands mid-stream even on a busy machine.
    const backend = { ...config, context_size: 4096 };
    const victim = (await hosted.load(await llamas.manager.resolve("nano.gguf"), { backend })) as TextModel;
    const pid = victim.pid as number;
    const pending = victim.complete("Once", {
      maxTokens: 4000,
      temperature: 0,
      onText: () => process.kill(pid, "SIGKILL"),
    });
    await assert.rejects(pending, (error: Error) => {
      assert.ok(error instanceof ModelCrashed);
      assert.match(error.message, /signal SIGKILL/);
      return true;
    });
    assert.ok((await victim.crashed) instanceof ModelCrashed);
    await assert.rejects(victim.tokenize("x"), ModelCrashed);
    await victim.dispose();
    assert.ok(!alive(pid));
  });
});

describe("hosts that break the protocol", () => {
  const backend = new HostedBackend("gguf", { entry: MISBEHAVING, spare: false });
  // A 1.5 s bound for the load (the host's start has its own): the silent host never answers anyway.
  const impatient = new HostedBackend("gguf", { entry: MISBEHAVING, spare: false, loadTimeoutMs: () => 1500 });
  after(() => Promise.all([backend.dispose(), impatient.dispose()]));

  async function descriptor(name: string) {
    await writeFile(join(llamas.dir, name), "stand-in: the misbehaving host never reads it");
    return { ...(await llamas.manager.resolve("nano.gguf")), name, path: join(llamas.dir, name) };
  }

  test("a message that does not decode is a crash of that host, never of this process", async () => {
    const model = (await backend.load(await descriptor("garbage.gguf"), { backend: config })) as TextModel;
    const pid = model.pid as number;
    await assert.rejects(model.complete("x"), (error: Error) => {
      assert.ok(error instanceof ModelCrashed);
      assert.match(error.message, /sent a frame that does not decode/);
      return true;
    });
    assert.ok((await model.crashed) instanceof ModelCrashed);
    assert.ok(await gone(pid), "the host was killed");
    await model.dispose();
  });

  test("a host that does not answer a load within the bound: ModelLoadTimeout, and the host is killed", async () => {
    const started = Date.now();
    let pid = 0;
    await assert.rejects(
      impatient.load(await descriptor("silent.gguf"), { backend: config, onProgress: () => undefined }),
      (error: Error) => {
        assert.ok(error instanceof ModelLoadTimeout, String(error));
        assert.match(error.message, /did not load silent\.gguf within 2 s/);
        pid = Number((error as ModelLoadTimeout).details?.pid ?? 0);
        return true;
      },
    );
    assert.ok(Date.now() - started >= 1400);
    if (pid) assert.ok(await gone(pid));
  });

  test("settle waits for the spare started after a load to be ready; with no spare it starts none", async () => {
    process.env.INFERNO_TEST_HOST_START_MS = "800";
    const slow = new HostedBackend("gguf", { entry: MISBEHAVING });
    const single = new HostedBackend("gguf", { entry: MISBEHAVING, spare: false });
    try {
      const model = await slow.load(await descriptor("ok.gguf"), { backend: config });
      const started = Date.now();
      await slow.settle();
      assert.ok(Date.now() - started >= 700, "settle waited for the new spare's start");
      assert.notEqual(slow.sparePid, null);
      assert.notEqual(slow.sparePid, model.pid);
      const other = await single.load(await descriptor("ok.gguf"), { backend: config });
      await single.settle();
      assert.equal(single.sparePid, null, "settle started no host");
      await Promise.all([model.dispose(), other.dispose()]);
    } finally {
      delete process.env.INFERNO_TEST_HOST_START_MS;
      await Promise.all([slow.dispose(), single.dispose()]);
    }
  });

  test("a spare host ended by SIGINT as it starts (a Ctrl-C caught between fork and its own group) fails nothing: Disposed, not ModelLoadFailed", async () => {
    process.env.INFERNO_TEST_HOST_START_SIGNAL = "SIGINT";
    const interrupted = new HostedBackend("gguf", { entry: MISBEHAVING });
    try {
      await assert.rejects(interrupted.ready(config), (error: Error) => {
        assert.ok(error instanceof Disposed, String(error));
        assert.match(error.message, /interrupted \(Ctrl-C\) while it started/);
        return true;
      });
      process.env.INFERNO_TEST_HOST_START_SIGNAL = "SIGTERM";
      await assert.rejects(interrupted.ready(config), ModelLoadFailed, "any other signal is a failed start");
    } finally {
      delete process.env.INFERNO_TEST_HOST_START_SIGNAL;
      await interrupted.dispose();
    }
  });

  test("a host that dies while loading (SIGSEGV) fails that load with ModelLoadFailed naming the signal", async () => {
    await assert.rejects(backend.load(await descriptor("dies.gguf"), { backend: config }), (error: Error) => {
      assert.ok(error instanceof ModelLoadFailed, String(error));
      assert.match(
        error.message,
        /could not load dies\.gguf: the model host of dies\.gguf \(pid \d+\) was ended by signal SIGSEGV/,
      );
      return true;
    });
  });
});
