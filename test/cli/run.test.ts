/** `inferno run MODEL [PROMPT]` like `ollama run`: positional arguments, chat by default (`--raw` for a completion), and the chat loop on piped stdin. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cliSandbox, type CliResult, runCli } from "../../testkit/cli.js";
import { TEST_LOCAL_ENV } from "../../testkit/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const LOCAL = TEST_LOCAL_ENV;
const GREEDY = ["--max-tokens", "6", "--temperature", "0"];

/** `inferno …args` in-process with `lines` as piped stdin (not a terminal). */
function runWithStdin(s: Awaited<ReturnType<typeof cliSandbox>>, args: string[], lines: string[]): Promise<CliResult> {
  return runCli(args, { env: { ...s.env, ...LOCAL }, cwd: s.cwd, stdin: lines });
}

test("run MODEL PROMPT: positional, chat through the template by default, --raw completes as written", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const plain = await s.run(["run", "inferno-demo", "Once upon a time", ...GREEDY], LOCAL);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(plain.stdout.trim().length > 0);
  assert.deepEqual(plain.stdoutWrites.length, 1, "not a terminal: the answer is written whole");

  const chat = JSON.parse(
    (await s.run(["--json", "run", "inferno-demo", "Once upon a time", ...GREEDY], LOCAL)).stdout,
  );
  const raw = JSON.parse(
    (
      await s.run(
        ["--json", "run", "--model", "inferno-demo", "--prompt", "Once upon a time", "--raw", ...GREEDY],
        LOCAL,
      )
    ).stdout,
  );
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
  const result = await runWithStdin(
    s,
    ["--verbose", "run", "inferno-demo", ...GREEDY],
    ["Hello", "", "Tell me more", "/bye", "never read"],
  );
  assert.equal(result.code, 0, result.stderr);
  const turns = [...result.stderr.matchAll(/(\d+) prompt \+ (\d+) completion tokens .* tokens\/s/g)];
  assert.equal(turns.length, 2, `two answers (the empty line is skipped, nothing after /bye):\n${result.stderr}`);
  const [first, second] = turns.map((m) => Number(m[1]));
  assert.ok(
    (second ?? 0) > (first ?? 0) + 2,
    `the second turn carries the first turn and its answer: ${first} then ${second} prompt tokens`,
  );
  assert.match(result.stderr, /loaded in \d+ ms/);
  assert.doesNotMatch(result.stdout, />>>/, "no prompt when stdin is not a terminal");

  const ended = await runWithStdin(s, ["run", "inferno-demo", ...GREEDY], ["Hello"]);
  assert.equal(ended.code, 0, "end of input leaves like /bye");
  assert.ok(ended.stdout.trim().length > 0);
});

test("a chat longer than the context drops its oldest turns instead of ending; a single line too long ends piped input", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const turnsOf = (stderr: string) =>
    [...stderr.matchAll(/(\d+) prompt \+ (\d+) completion tokens .* finish: (\w+)/g)].map((m) => ({
      prompt: Number(m[1]),
      completion: Number(m[2]),
      finish: m[3],
    }));
  // Greedy on the demo model never picks the end token here. Answers of 40 tokens: eight of them alone outgrow the
  // tests' 256-token context, so the later turns fit only because the oldest were cut.
  const lines = ["Hello", "Again", "Third", "Fourth", "Fifth", "Sixth", "Seventh", "Eighth"];
  const growing = await runWithStdin(
    s,
    ["--verbose", "run", "inferno-demo", "--max-tokens", "40", "--temperature", "0"],
    lines,
  );
  assert.equal(growing.code, 0, growing.stderr);
  const answers = turnsOf(growing.stderr);
  assert.equal(answers.length, lines.length, growing.stderr);
  assert.ok(answers.reduce((sum, a) => sum + a.completion, 0) > 256, "the answers alone are longer than the context");
  for (const a of answers)
    assert.ok(a.prompt + a.completion <= 256, `within the context: ${a.prompt} + ${a.completion}`);

  // Answers that fill the whole context: each leaves no room for the next, so the older half of the history goes.
  const filling = await runWithStdin(
    s,
    ["--verbose", "run", "inferno-demo", "--max-tokens", "100000", "--temperature", "0"],
    ["Hello", "Again", "Third"],
  );
  assert.equal(filling.code, 0, filling.stderr);
  assert.deepEqual(
    turnsOf(filling.stderr).map((a) => a.finish),
    ["length", "length", "length"],
  );
  assert.match(filling.stderr, /the conversation filled the model's context: its older half is left out from now on/);

  // Without a terminal a failing turn still ends the command, with the error's exit code.
  const tooLong = await runWithStdin(
    s,
    ["run", "inferno-demo", ...GREEDY],
    ["tell me about the cat ".repeat(60), "Hello"],
  );
  assert.notEqual(tooLong.code, 0);
  assert.match(tooLong.stderr, /^error: messages: \d+ tokens, but the model is loaded with a context of 256 tokens/m);
});

test("run in this process goes through the runtime's cache: each answer is a request in the state file (cache stats)", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const once = await s.run(["run", "inferno-demo", "Hello", ...GREEDY, "--local"], LOCAL);
  assert.equal(once.code, 0, once.stderr);
  const requests = async () => {
    const stats = JSON.parse((await s.run(["cache", "stats", "--json"], LOCAL)).stdout);
    const model = stats.models.find((m: { name: string }) => m.name === "inferno-demo.gguf");
    return { requests: model?.requests, misses: stats.misses, hits: stats.hits };
  };
  assert.deepEqual(await requests(), { requests: 1, misses: 1, hits: 0 }, "one request, a cold load");
  const chat = await runWithStdin(s, ["run", "inferno-demo", ...GREEDY], ["hi", "again"]);
  assert.equal(chat.code, 0, chat.stderr);
  assert.deepEqual(
    await requests(),
    { requests: 3, misses: 2, hits: 1 },
    "two turns: the first loads, the second finds it loaded",
  );
});
