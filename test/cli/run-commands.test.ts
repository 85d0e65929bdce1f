/**
 * `inferno run` like `ollama run`: the words after the model are the prompt, joined with spaces; names as Ollama
 * clients send them (`inferno-demo:latest`); the chat's slash commands (`/?`, `/set parameter`, `/set system`, `/show`,
 * `/clear`, `/bye`) on piped stdin; and the per-user models directory found from any working directory.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { cliSandbox, runCli } from "../../testkit/cli.js";
import { TEST_BACKEND_ENV } from "../../testkit/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process. */
const LOCAL = { ...TEST_BACKEND_ENV, INFERNO_SERVER__PORT: "1" };
const GREEDY = ["--max-tokens", "6", "--temperature", "0"];

test("run MODEL words…: the words are one prompt; MODEL:latest works; the per-user models are found from anywhere", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const quoted = JSON.parse(
    (await s.run(["--json", "run", "inferno-demo", "Once upon a time", ...GREEDY], LOCAL)).stdout,
  );
  const words = await s.run(["--json", "run", "inferno-demo", "Once", "upon", "a", "time", ...GREEDY], LOCAL);
  assert.equal(words.code, 0, words.stderr);
  const joined = JSON.parse(words.stdout);
  assert.equal(joined.text, quoted.text, "the same greedy answer");
  assert.equal(joined.usage.prompt_tokens, quoted.usage.prompt_tokens, "the same prompt");

  // Another working directory (no clone, no ./models): the per-user directory still holds the demo model.
  const elsewhere = join(s.root, "elsewhere");
  await mkdir(elsewhere);
  const tagged = await runCli(["--json", "run", "inferno-demo:latest", "Once", "upon", "a", "time", ...GREEDY], {
    env: { ...s.env, ...LOCAL },
    cwd: elsewhere,
  });
  assert.equal(tagged.code, 0, tagged.stderr);
  assert.equal(JSON.parse(tagged.stdout).text, quoted.text);
});

test("the chat's slash commands on piped stdin: /?, /set parameter, /set system, /show, /clear, /bye", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const result = await runCli(["--verbose", "run", "inferno-demo", ...GREEDY], {
    env: { ...s.env, ...LOCAL },
    cwd: s.cwd,
    stdin: [
      "/?",
      "/set parameter num_predict 3",
      "/show parameters",
      "Hello",
      "/clear",
      "/set system You answer every question with one short and very polite sentence.",
      "/show system",
      "Hello",
      "/show info",
      "/set parameter bogus 1",
      "/set parameter temperature hot",
      "/frobnicate",
      "/bye",
      "never read",
    ],
  });
  assert.equal(result.code, 0, result.stderr);
  const out = result.stdout;
  assert.match(out, /Available commands:/);
  assert.match(out, /Set parameter 'num_predict' to '3'\./);
  assert.match(out, /Parameters:[\s\S]*num_predict\s+3/);
  assert.match(out, /Cleared the conversation\./);
  assert.match(out, /Set system message\./);
  assert.match(out, /^You answer every question with one short and very polite sentence\.$/m);
  assert.match(out, /architecture\s+llama/);
  assert.match(out, /context length\s+\d+/);
  assert.match(out, /usage: \/set parameter NAME VALUE, with NAME one of temperature, seed, num_predict/);
  assert.match(out, /temperature expects a number >= 0, found "hot"/);
  assert.match(out, /unknown command \/frobnicate: \/\? lists the commands/);

  const turns = [...result.stderr.matchAll(/(\d+) prompt \+ (\d+) completion tokens/g)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
  assert.equal(turns.length, 2, `two answers, nothing after /bye:\n${result.stderr}`);
  for (const [, completion] of turns) assert.ok((completion ?? 0) <= 3, "num_predict 3 caps each answer");
  const [[first = 0], [second = 0]] = turns as [number[], number[]];
  // After /clear the first turn is gone; the system message (several tokens) comes in its place.
  assert.ok(second > first + 5, `the system message reaches the model: ${first} then ${second} prompt tokens`);
});
