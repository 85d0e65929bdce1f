/** Least exposure in messages (server/exposure.ts): what a remote client reads instead of the server's paths. */
import assert from "node:assert/strict";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ModelLoadFailed, ModelNotFound, ModelOutsideModelsDir, RouteNotFound } from "../../src/errors/index.js";
import { PathRedactor } from "../../src/server/exposure.js";

const models = "/srv/inferno/models";
const paths = new PathRedactor({ modelsDirs: [models, "/data/more-models"], cacheDir: "/var/cache/inferno" });

describe("PathRedactor", () => {
  const cases: Array<[string, string, unknown, string]> = [
    [
      "a model's file named in the error's details is the model's name, even outside every known directory",
      "llama.cpp could not load tiny.gguf: failed to open /mnt/elsewhere/blob-123: bad magic",
      new ModelLoadFailed("x", { details: { model: "tiny.gguf", path: "/mnt/elsewhere/blob-123" } }),
      "llama.cpp could not load tiny.gguf: failed to open tiny.gguf: bad magic",
    ],
    [
      "a file in a models directory is its name there; the directories are <models_dir>",
      `model "x" not found (not in the models directories ${models}, /data/more-models); see ${models}/llama/tiny.gguf`,
      new ModelNotFound("x", { details: { name: "x", models_dirs: [models, "/data/more-models"] } }),
      'model "x" not found (not in the models directories <models_dir>, <models_dir>); see llama/tiny.gguf',
    ],
    [
      "a symlink's target is <path>",
      `model "escape.gguf" resolves to /etc/secret/file.gguf, outside the models directory ${models}`,
      new ModelOutsideModelsDir("x", {
        details: { name: "escape.gguf", target: "/etc/secret/file.gguf", models_dir: models },
      }),
      'model "escape.gguf" resolves to <path>, outside the models directory <models_dir>',
    ],
    [
      "a Node system error's path along the cause chain, and the cache, temp and home directories",
      `could not save: EACCES: permission denied, open '/opt/state/x.tmp'; cache /var/cache/inferno/cache_state.bin.zst, ${join(tmpdir(), "a")}, ${join(homedir(), "b")}`,
      new Error("outer", { cause: Object.assign(new Error("EACCES"), { path: "/opt/state/x.tmp" }) }),
      "could not save: EACCES: permission denied, open '<path>'; cache <path>, <path>, <path>",
    ],
    [
      "URL paths are not file paths",
      "no route for POST /v1/nothing",
      new RouteNotFound("x"),
      "no route for POST /v1/nothing",
    ],
  ];
  for (const [name, message, error, expected] of cases) {
    it(name, () => assert.equal(paths.message(message, error), expected));
  }
});
