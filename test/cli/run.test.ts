/** `inferno run MODEL [PROMPT]` like `ollama run`: positional arguments, chat by default (`--raw` for a completion), and the chat loop on piped stdin. */
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { main } from "../../src/cli/main.js";
import { cliSandbox, type CliResult } from "../helpers/cli.js";
import { TEST_BACKEND_ENV } from "../helpers/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const LOCAL = { ...TEST_BACKEND_ENV, INFERNO_SERVER__PORT: "1" };
const GREEDY = ["--max-tokens", "6", "--temperature", "0"];

/** `inferno …args` in-process with `lines` as piped stdin (not a terminal). */
async function runWithStdin(s: Awaited<ReturnType<typeof cliSandbox>>, args: string[], lines: string[]): Promise<CliResult> {
  const chunks: string[] = [];
  const errors: string[] = [];
  const sink = (into: string[]) =>
    new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        into.push(chunk.toString());
        done();
      },
    });
  const code = await main(["node", "inferno", ...args], {
    stdout: sink(chunks),
    stderr: sink(errors),
    stdin: Readable.from(lines.map((line) => `${line}\n`)),
    env: { ...s.env, ...LOCAL },
    cwd: s.cwd,
  });
  return { code, stdout: chunks.join(""), stderr: errors.join(""), stdoutWrites: chunks };
}

test("run MODEL PROMPT: positional, chat through the template by default, --raw completes as written", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const plain = await s.run(["run", "inferno-demo", "Once upon a time", ...GREEDY], LOCAL);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(plain.stdout.trim().length > 0);
  assert.deepEqual(plain.stdoutWrites.length, 1, "not a terminal: the answer is written whole");

  const chat = JSON.parse((await s.run(["--json", "run", "inferno-demo", "Once upon a time", ...GREEDY], LOCAL)).stdout);
  const raw = JSON.parse((await s.run(["--json", "run", "--model", "inferno-demo", "--prompt", "Once upon a time", "--raw", ...GREEDY], LOCAL)).stdout);
  assert.equal(chat.text.trim(), plain.stdout.trim(), "the same greedy chat answer");
  assert.ok(
    chat.usage.prompt_tokens > raw.usage.prompt_tokens,
    `the chat template wraps the prompt: ${chat.usage.prompt_tokens} prompt tokens in chat, ${raw.usage.prompt_tokens} raw (--model/--prompt)`,
  );

  const twice = await s.run(["run", "inferno-demo", "--model", "inferno-demo", "hi"], LOCAL);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /the model was given twice, as an argument and with --model: give it once/);
  const promptTwice = await s.run(["run", "inferno-demo", "hi", "--prompt", "ho"], LOCAL);
  assert.equal(promptTwice.code, 2);
  const none = await s.run(["run"], LOCAL);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no model given: inferno run MODEL \[PROMPT\]/);
});

test("run without a prompt chats turn by turn from piped stdin, keeping the history, until /bye", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const result = await runWithStdin(s, ["--verbose", "run", "inferno-demo", ...GREEDY], ["Hello", "", "Tell me more", "/bye", "never read"]);
  assert.equal(result.code, 0, result.stderr);
  const turns = [...result.stderr.matchAll(/(\d+) prompt \+ (\d+) completion tokens .* tokens\/s/g)];
  assert.equal(turns.length, 2, `two answers (the empty line is skipped, nothing after /bye):\n${result.stderr}`);
  const [first, second] = turns.map((m) => Number(m[1]));
  assert.ok((second ?? 0) > (first ?? 0) + 2, `the second turn carries the first turn and its answer: ${first} then ${second} prompt tokens`);
  assert.match(result.stderr, /loaded in \d+ ms/);
  assert.doesNotMatch(result.stdout, />>>/, "no prompt when stdin is not a terminal");

  const ended = await runWithStdin(s, ["run", "inferno-demo", ...GREEDY], ["Hello"]);
  assert.equal(ended.code, 0, "end of input leaves like /bye");
  assert.ok(ended.stdout.trim().length > 0);
});
