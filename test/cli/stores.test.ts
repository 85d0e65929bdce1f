/** `inferno models list --stores` and `model_stores`, in-process, on fixture stores under a sandboxed home. */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { DEMO_MODEL_FILE } from "../../src/models/index.js";
import { cliSandbox } from "../../testkit/cli.js";
import { TEST_LOCAL_ENV as FAST } from "../../testkit/models.js";
import { ollamaModel } from "../../testkit/stores.js";

test("the stores present are read by default; models list --stores shows each; model_stores narrows them", async (t) => {
  const s = await cliSandbox(t);
  const ollama = join(s.root, "ollama-models");
  await ollamaModel(ollama, "tiny", "latest", tinyLlamaGguf());
  await ollamaModel(ollama, "broken", "v1", tinyLlamaGguf(), { manifestText: "not json" });
  await mkdir(join(s.home, ".lmstudio/models/pub/repo"), { recursive: true });
  await writeFile(join(s.home, ".lmstudio/models/pub/repo/lm.gguf"), tinyLlamaGguf({ seed: 2 }));
  await s.run(["models", "demo"], FAST);
  const env = { ...FAST, OLLAMA_MODELS: ollama };

  const plain = await s.run(["--json", "models", "list"], env);
  assert.deepEqual(
    (JSON.parse(plain.stdout) as Array<{ name: string }>).map((m) => m.name),
    ["broken:v1", DEMO_MODEL_FILE, "pub/repo/lm.gguf", "tiny:latest"],
    "default: every store present (the Hugging Face cache is absent here)",
  );
  await writeFile(s.localFile, "model_stores = []\n");
  const none = await s.run(["--json", "models", "list"], env);
  assert.deepEqual(
    (JSON.parse(none.stdout) as Array<{ name: string }>).map((m) => m.name),
    [DEMO_MODEL_FILE],
    "model_stores = [] reads none",
  );

  const all = await s.run(["models", "list", "--stores"], env);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /^NAME +STORE +FORMAT/);
  assert.match(all.stdout, /tiny:latest +ollama +gguf .* llama /);
  assert.match(all.stdout, /broken:v1 +ollama +gguf .*invalid \(see `models validate`\)/);
  assert.match(all.stdout, /pub\/repo\/lm\.gguf +lmstudio/);
  assert.match(
    all.stderr,
    new RegExp(`ollama: 2 model\\(s\\) in ${ollama} \\(not enabled: add "ollama" to model_stores\\)`),
  );
  assert.match(all.stderr, /huggingface: 0 model\(s\) in .*huggingface\/hub, which does not exist \(not enabled/);

  await writeFile(s.localFile, 'model_stores = ["ollama"]\n');
  const enabled = JSON.parse((await s.run(["--json", "models", "list"], env)).stdout) as Array<{
    name: string;
    store: string | null;
    valid: boolean;
    error?: string;
  }>;
  assert.deepEqual(
    enabled.map((m) => [m.name, m.store, m.valid]),
    [
      ["broken:v1", "ollama", false],
      [DEMO_MODEL_FILE, null, true],
      ["tiny:latest", "ollama", true],
    ],
  );
  assert.match(enabled[0]?.error ?? "", /manifest is not JSON/);
  const validate = await s.run(["models", "validate"], env);
  assert.equal(validate.code, 1);
  assert.match(validate.stdout, /INVALID {2}broken:v1: manifest is not JSON/);
  assert.match(validate.stdout, /ok {7}tiny:latest/);
  const run = await s.run(
    ["run", "--model", "tiny", "--prompt", "Once", "--max-tokens", "3", "--temperature", "0"],
    env,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.stdout.trim().length > 0, "Ollama's short name runs the blob");
});
