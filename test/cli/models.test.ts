/** `inferno models …` and `inferno run`, in-process with captured output, on real generated models. */
import assert from "node:assert/strict";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { main } from "../../src/cli/main.js";
import { DEMO_MODEL_FILE } from "../../src/models/index.js";
import { cliSandbox } from "../../testkit/cli.js";
import { TEST_LOCAL_ENV } from "../../testkit/models.js";
import { tinyAddOnnx } from "../../testkit/onnx.js";

const FAST = TEST_LOCAL_ENV;

test("models demo, then run it: the README's first commands", async (t) => {
  const s = await cliSandbox(t);
  const demo = await s.run(["models", "demo"], FAST);
  assert.equal(demo.code, 0, demo.stderr);
  assert.match(demo.stdout, new RegExp(`wrote .*models/${DEMO_MODEL_FILE}`));
  assert.match(demo.stderr, /try: inferno run inferno-demo "Once upon a time"/);
  assert.match((await s.run(["models", "demo"], FAST)).stdout, /^kept /);

  const run = await s.run(
    ["run", "--model", "inferno-demo", "--prompt", "Once upon a time", "--max-tokens", "8"],
    FAST,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.stdout.trim().length > 0);
  assert.equal(run.stderr, "", "no progress line when stderr is not a terminal");

  const json = await s.run(
    ["--json", "run", "--model", "inferno-demo", "--prompt", "Once", "--max-tokens", "4", "--seed", "3"],
    FAST,
  );
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout) as {
    model: string;
    text: string;
    finish_reason: string;
    usage: { completion_tokens: number };
  };
  assert.equal(result.model, DEMO_MODEL_FILE);
  assert.equal(result.finish_reason, "length");
  assert.ok(result.usage.completion_tokens >= 4);

  const streamed = await s.run(
    ["run", "--model", "inferno-demo", "--prompt", "Once", "--max-tokens", "4", "--seed", "3", "--stream"],
    FAST,
  );
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.equal(streamed.stdout, `${result.text}\n`, "streaming prints the same text as it comes");
});

test("models demo into a directory given for this command only: the hint names it, so it works as printed", async (t) => {
  const s = await cliSandbox(t);
  for (const args of [
    ["models", "demo", "elsewhere"],
    ["models", "demo", "--models-dir", "flagged"],
  ]) {
    const demo = await s.run(args, FAST);
    assert.equal(demo.code, 0, demo.stderr);
    const dir = join(s.cwd, args.at(-1) as string);
    assert.ok(
      demo.stderr.includes(`try: inferno run --models-dir ${JSON.stringify(dir)} inferno-demo "Once upon a time"`),
      demo.stderr,
    );
  }
});

test("models list and info, as tables and as JSON", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  await writeFile(join(s.modelsDir, "add.onnx"), tinyAddOnnx());
  const table = await s.run(["models", "list"]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /NAME\s+FORMAT\s+SIZE\s+ARCHITECTURE\s+QUANTIZATION\s+PARAMETERS\s+CONTEXT/);
  assert.match(table.stdout, /inferno-demo\.gguf\s+gguf\s+1\.3 MiB\s+llama\s+Q8_0\s+1\.2M\s+1024/);
  assert.match(table.stdout, /add\.onnx\s+onnx\s+\d+ B\s+opset 13/);
  const list = JSON.parse((await s.run(["models", "list", "--json"])).stdout) as Array<{
    name: string;
    valid: boolean;
  }>;
  assert.deepEqual(
    list.map((m) => [m.name, m.valid]),
    [
      ["add.onnx", true],
      ["inferno-demo.gguf", true],
    ],
  );
  const info = JSON.parse((await s.run(["models", "info", "add", "--json"])).stdout) as {
    metadata: { inputs: unknown[] };
  };
  assert.equal(info.metadata.inputs.length, 2);
  assert.match((await s.run(["models", "info", "inferno-demo"])).stdout, /chat template\s+yes/);
});

test("models validate exits 1 when a file is invalid, and names it", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  assert.equal((await s.run(["models", "validate"])).code, 0);
  await writeFile(join(s.modelsDir, "broken.gguf"), "GGML not really");
  const bad = await s.run(["models", "validate"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /INVALID\s+broken\.gguf: wrong magic "GGML"/);
  assert.match(bad.stdout, /ok\s+inferno-demo\.gguf/);
  const one = await s.run(["models", "validate", "inferno-demo", "--hash", "--json"]);
  assert.equal(one.code, 0);
  assert.match((JSON.parse(one.stdout) as Array<{ sha256: string }>)[0]?.sha256 ?? "", /^[0-9a-f]{64}$/);
});

test("name errors and misuse give one clear sentence and the right exit code", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo", "elsewhere"]);
  const missing = await s.run(["run", "--model", "inferno-dem", "--prompt", "x", "--models-dir", "elsewhere"]);
  assert.equal(missing.code, 2, "a mistyped name is a usage error");
  assert.match(missing.stderr, /model "inferno-dem" not found .*did you mean "inferno-demo"/);
  const outside = await s.run(["models", "info", "../elsewhere/inferno-demo.gguf"]);
  assert.equal(outside.code, 2);
  assert.match(outside.stderr, /outside the models directory/);
  for (const copy of ["x", "y"]) {
    await mkdir(join(s.cwd, "elsewhere", copy));
    await copyFile(join(s.cwd, "elsewhere", DEMO_MODEL_FILE), join(s.cwd, "elsewhere", copy, "twin.gguf"));
  }
  const ambiguous = await s.run(["models", "info", "twin", "--models-dir", "elsewhere"]);
  assert.match(ambiguous.stderr, /"twin" is ambiguous: it matches x\/twin\.gguf, y\/twin\.gguf/);
  const unknown = await s.run(["models", "info", "nothing-like-it", "--models-dir", "elsewhere"]);
  assert.match(unknown.stderr, /model "nothing-like-it" not found/);
  assert.deepEqual([unknown.code, ambiguous.code, outside.code], [2, 2, 2], "every name the user got wrong exits 2");
  const usage = await s.run([
    "run",
    "--model",
    "inferno-demo",
    "--prompt",
    "x",
    "--max-tokens",
    "lots",
    "--models-dir",
    "elsewhere",
  ]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--max-tokens expects a positive whole number, found "lots"/);
  await writeFile(join(s.cwd, "elsewhere", "add.onnx"), tinyAddOnnx());
  const onnx = await s.run(["run", "--model", "add", "--prompt", "x", "--models-dir", "elsewhere"]);
  assert.equal(onnx.code, 1);
  assert.match(onnx.stderr, /ONNX tensor model/);
});

test("run shows a progress line while loading only when stderr is a terminal, and erases it", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const chunks: string[] = [];
  const sink = (tty: boolean) =>
    Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          if (tty) chunks.push(chunk.toString());
          done();
        },
      }),
      { isTTY: tty },
    );
  const code = await main(
    ["node", "inferno", "run", "--model", "inferno-demo", "--prompt", "Once", "--max-tokens", "2"],
    {
      stdout: sink(false),
      stderr: sink(true),
      env: { ...s.env, ...TEST_LOCAL_ENV },
      cwd: s.cwd,
    },
  );
  assert.equal(code, 0);
  const progress = chunks.join("");
  assert.match(progress, /loading inferno-demo\.gguf/);
  assert.ok(progress.endsWith("\r\x1b[K"), "the line is erased before output");
});
