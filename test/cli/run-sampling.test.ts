/** `inferno run`'s sampling flags on the demo model: --stream writes pieces, --temperature reaches the sampler. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cliSandbox } from "../../testkit/cli.js";
import { TEST_LOCAL_ENV } from "../../testkit/models.js";

const FAST = TEST_LOCAL_ENV;

test("run --stream writes the text in pieces as they come; without it the text is written once", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"], FAST);
  const args = ["run", "--model", "inferno-demo", "--prompt", "Once upon a time", "--max-tokens", "8", "--seed", "4"];
  const whole = await s.run(args, FAST);
  assert.equal(whole.code, 0, whole.stderr);
  assert.deepEqual(whole.stdoutWrites, [whole.stdout], "one write: the whole text and its newline");
  const streamed = await s.run([...args, "--stream"], FAST);
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.equal(streamed.stdout, whole.stdout, "the pieces make up the same text");
  const pieces = streamed.stdoutWrites.slice(0, -1);
  assert.equal(streamed.stdoutWrites.at(-1), "\n", "the closing newline comes last, on its own");
  assert.ok(pieces.length >= 3, `${pieces.length} pieces: ${JSON.stringify(pieces)}`);
  assert.ok(pieces.every((piece) => piece.length > 0));
});

test("run --temperature reaches the sampler: 0 is greedy whatever the seed, a high one samples", async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"], FAST);
  const textAt = async (temperature: string, seed: number) => {
    const args = ["--json", "run", "--model", "inferno-demo", "--prompt", "Once upon a time", "--max-tokens", "8"];
    const result = await s.run([...args, "--temperature", temperature, "--seed", String(seed)], FAST);
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { text: string }).text;
  };
  const texts = async (temperature: string) => {
    const found = new Set<string>();
    for (const seed of [1, 2, 3]) found.add(await textAt(temperature, seed));
    return found;
  };
  const greedy = await texts("0");
  assert.equal(greedy.size, 1, `greedy decoding ignores the seed: ${JSON.stringify([...greedy])}`);
  const hot = await texts("1.5");
  assert.ok(hot.size > 1, `sampling at 1.5 depends on the seed: ${JSON.stringify([...hot])}`);
  const bad = await s.run(["run", "--model", "inferno-demo", "--prompt", "x", "--temperature", "-1"], FAST);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--temperature expects a number >= 0, found "-1"/);
});
