import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { createBackends, disposeBackends } from "../../src/backends/index.js";
import { loadConfig } from "../../src/config/index.js";
import { ModelManager } from "../../src/models/manager.js";
import { observeLoads, ProgressLine } from "../../src/runtime/progress.js";
import { TEST_BACKEND, tinyModelsDir } from "../../testkit/models.js";

function capture(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

describe("load progress", () => {
  it("draws one line, redrawn in place only when the percentage changes, and clears it", () => {
    const out = capture();
    const line = new ProgressLine(out.stream);
    line.update("a.gguf", 0);
    line.update("a.gguf", 0.001);
    line.update("a.gguf", 0.5);
    line.update("a.gguf", 1.2);
    line.clear();
    line.clear();
    const bar = (n: number) => `${"#".repeat(n)}${" ".repeat(24 - n)}`;
    assert.equal(
      out.text(),
      [
        `\r\x1b[2Kloading a.gguf [${bar(0)}] 0%`,
        `\r\x1b[2Kloading a.gguf [${bar(12)}] 50%`,
        `\r\x1b[2Kloading a.gguf [${bar(24)}] 100%`,
        "\r\x1b[2K",
      ].join(""),
    );
  });

  it("observeLoads reports a real llama.cpp load from 0 to 1 and keeps the caller's own onProgress", async (t) => {
    const { dir } = await tinyModelsDir(t);
    const config = await loadConfig({
      env: { HOME: dir },
      cwd: dir,
      flags: [{ key: "backend.gpu", value: false, flag: "--gpu" }],
    });
    const backends = createBackends(TEST_BACKEND);
    t.after(() => disposeBackends(backends));
    const seen: number[] = [];
    const own: number[] = [];
    const observed = observeLoads(backends, (name, fraction) => {
      assert.equal(name, "tiny.gguf");
      seen.push(fraction);
    });
    const model = await new ModelManager(dir).resolve("tiny.gguf");
    const loaded = await observed.gguf!.load(model, {
      backend: { ...config.backend, context_size: 256, threads: 1 },
      onProgress: (fraction) => own.push(fraction),
    });
    await loaded.dispose();
    assert.equal(seen[0], 0);
    assert.equal(seen.at(-1), 1);
    assert.deepEqual(seen.slice(1), own);
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] ?? 0) >= (seen[i - 1] ?? 0), "progress never goes back");
  });
});
