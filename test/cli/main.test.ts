/** The entry point's error and remark output: one sentence by default, details with `--verbose`, silence with `--quiet`. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { cliSandbox } from "../../testkit/cli.js";

test("an error is one sentence on stderr; --verbose adds the error's details and its stack", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const plain = await s.run(["models", "info", "inferno-dem"]);
  assert.equal(plain.code, 2);
  assert.equal(plain.stdout, "");
  assert.match(
    plain.stderr,
    /^error: model "inferno-dem" not found \(looked in the models directory .*\); did you mean "inferno-demo"[^?]*\? To add models: put a \.gguf or \.onnx file in .*, or add a directory with --models-dir DIR[^\n]*\n$/,
  );
  assert.equal(plain.stderr.split("\n").length, 2, "one line, then the final newline");

  const verbose = await s.run(["--verbose", "models", "info", "inferno-dem"]);
  assert.equal(verbose.code, 2);
  const [sentence, ...rest] = verbose.stderr.split("\n");
  assert.equal(`${sentence}\n`, plain.stderr, "the sentence comes first, unchanged");
  const detail = rest.join("\n");
  assert.match(detail, /"suggestions": \[\s*"inferno-demo",/);
  assert.ok(detail.includes(`"models_dir": ${JSON.stringify(s.modelsDir)}`), detail);
  assert.match(detail, /^ModelNotFound: model "inferno-dem" not found/m);
  assert.match(detail, /^\s+at .*manager\.ts:\d+/m, "the stack names where the error was raised");
});

test("--quiet silences remarks and warnings but not the result or errors", async (t) => {
  const s = await cliSandbox(t);
  const env = { INFERNO_CACHE__CACHE_DIR: join(s.root, "cache"), INFERNO_SERVER__PORT: "1" };
  const loud = await s.run(["cache", "stats", "--json"], env);
  assert.equal(loud.code, 0, loud.stderr);
  assert.match(loud.stderr, /no server running at http:\/\/127\.0\.0\.1:1; read /);
  const quiet = await s.run(["--quiet", "cache", "stats", "--json"], env);
  assert.equal(quiet.code, 0);
  assert.equal(quiet.stderr, "");
  assert.deepEqual(JSON.parse(quiet.stdout), JSON.parse(loud.stdout));

  // A warning: the local file is changed while an environment variable still decides the value.
  const overridden = { INFERNO_SERVER__PORT: "9100" };
  const warned = await s.run(["config", "set", "server.port", "9000"], overridden);
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /warning: server\.port is 9100 in effect: .*INFERNO_SERVER__PORT.* takes precedence/);
  const silenced = await s.run(["--quiet", "config", "set", "server.port", "9001"], overridden);
  assert.equal(silenced.code, 0);
  assert.equal(silenced.stderr, "");

  const failed = await s.run(["--quiet", "models", "info", "nothing-here"]);
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /^error: model "nothing-here" not found/, "--quiet never hides an error");
});
