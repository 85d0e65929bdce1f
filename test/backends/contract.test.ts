/** The Backend contract run against the real backends (GGUF on llama.cpp, ONNX on ONNX Runtime). */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeBackend } from "../../src/backends/fake.js";
import { HostedBackend, LlamaBackend, OnnxBackend } from "../../src/backends/index.js";
import type { LoadedModel } from "../../src/backends/types.js";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { hostBundle } from "../../testkit/host-bundle.js";
import { TEST_BACKEND } from "../../testkit/models.js";
import { tinyAddOnnx } from "../../testkit/onnx.js";
import { runBackendContract } from "./contract.js";

const config = TEST_BACKEND;

/** A models directory with a good and a broken file of one format (the broken one passes no header check: garbage). */
async function modelsWith(good: Buffer, ext: string) {
  const dir = await mkdtemp(join(tmpdir(), "inferno-contract-"));
  await writeFile(join(dir, `good.${ext}`), good);
  await writeFile(join(dir, `broken.${ext}`), Buffer.concat([good.subarray(0, 64), Buffer.alloc(64, 7)]));
  const manager = new ModelManager(dir);
  return {
    model: await manager.resolve(`good.${ext}`),
    broken: await manager.resolve(`broken.${ext}`),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

const useText = async (model: LoadedModel) => {
  if (model.kind !== "text") throw new Error("expected a text model");
  return model.complete("Once", { maxTokens: 2, temperature: 0 });
};

runBackendContract("gguf (llama.cpp, isolation = in-process)", async () => ({
  backend: new LlamaBackend(),
  config: { ...config, isolation: "in-process" },
  ...(await modelsWith(tinyLlamaGguf(), "gguf")),
  use: useText,
}));

runBackendContract("gguf (llama.cpp, isolation = process: model hosts)", async () => ({
  // Hosts from the bundled entry, without tsx (testkit/host-bundle.ts); test/backends/hosted.test.ts runs the source's.
  backend: new HostedBackend("gguf", { entry: await hostBundle() }),
  config: { ...config, isolation: "process" },
  ...(await modelsWith(tinyLlamaGguf(), "gguf")),
  use: useText,
}));

runBackendContract("onnx (ONNX Runtime)", async () => ({
  backend: new OnnxBackend(),
  config,
  ...(await modelsWith(tinyAddOnnx(), "onnx")),
  use: async (model) => {
    if (model.kind !== "tensor") throw new Error("expected a tensor model");
    const input = { type: "float32" as const, data: new Float32Array(4), dims: [1, 4] };
    return model.run({ a: input, b: input });
  },
}));

runBackendContract("fake (cache unit tests)", async () => ({
  backend: new FakeBackend(),
  config,
  model: {
    name: "fake.gguf",
    key: "/fake/fake.gguf",
    path: "/fake/fake.gguf",
    format: "gguf",
    fingerprint: { size: 1, mtimeMs: 0 },
  },
  use: async (model) => {
    if (model.kind !== "text") throw new Error("expected a text model");
    return model.complete("Once", { maxTokens: 2 });
  },
}));
