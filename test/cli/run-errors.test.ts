/** What a newcomer mistypes: a truncated model in `run`, Ollama's verbs. */
import assert from "node:assert/strict";
import { truncate } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { cliSandbox } from "../../testkit/cli.js";
import { TEST_LOCAL_ENV } from "../../testkit/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const LOCAL = TEST_LOCAL_ENV;

test("a truncated model in run gives the one sentence models validate gives, not llama.cpp's log", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  await truncate(join(s.modelsDir, "inferno-demo.gguf"), 600_000);
  const validate = await s.run(["models", "validate", "inferno-demo"]);
  const problem = /INVALID {2}inferno-demo\.gguf: (.*)/.exec(validate.stdout)?.[1];
  assert.ok(problem, validate.stdout);
  const run = await s.run(["run", "inferno-demo", "Hello"], LOCAL);
  assert.equal(run.code, 1);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.ok(lines[0]?.startsWith("error: ") && lines[0].includes(problem), `${lines[0]} should carry: ${problem}`);
});

test("Ollama's verbs get a one-line pointer to the Inferno command (exit 2)", async (t) => {
  const s = await cliSandbox(t);
  const expected: Array<[string[], RegExp]> = [
    [["list"], /there is no `list` command: Inferno lists models with `inferno models list`/],
    [["show", "llama3"], /`inferno models info llama3`/],
    [["stop", "llama3"], /`inferno cache evict llama3`/],
    [["rm", "llama3"], /never deletes model files/],
    [["pull", "llama3"], /downloads nothing: .*`inferno models demo`/],
  ];
  for (const [args, pointer] of expected) {
    const result = await s.run(args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, pointer);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  const help = await s.run(["--help"]);
  assert.doesNotMatch(help.stdout, /^\s+pull\b/m, "hidden from --help");
});

test("--gpu cuda where no CUDA build runs says so in one line and how to choose another (exit 1)", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const run = await s.run(["run", "inferno-demo", "Hello", "--gpu", "cuda", "--max-tokens", "2"], LOCAL);
  if (run.code === 0) return t.skip("this machine runs llama.cpp's CUDA build");
  assert.equal(run.code, 1, run.stderr);
  assert.deepEqual(run.stderr.trim().split("\n"), [
    'error: llama.cpp could not start (gpu = cuda): no llama.cpp build for cuda runs on this machine (its driver or runtime is missing); use gpu = "auto" to take what runs, or false for the CPU',
  ]);
});
