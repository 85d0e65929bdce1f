/** `inferno run` through a running server (its cache, its API key), and `--local`. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CacheStats } from "../../src/cache/types.js";
import { type CliResult } from "../../testkit/cli.js";
import { startTestServer } from "../../testkit/server.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const GREEDY = ["--max-tokens", "6", "--temperature", "0"];

test("run uses a running server (and its cache) and says so; --local loads in-process; a refused key says how to give one", async (t) => {
  const s = await startTestServer(t, { models: { gguf: { "a.gguf": { seed: 1 } } } });
  const env = { ...s.env, INFERNO_SERVER__PORT: String(s.server.port) };
  const served = await runCliIn(s.cwd, env, ["run", "a", "Hello", ...GREEDY]);
  assert.equal(served.code, 0, served.stderr);
  assert.match(served.stderr, new RegExp(`using the running server at ${s.url}`));
  assert.ok(served.stdout.trim().length > 0);
  const stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  assert.equal(
    stats.models.find((m) => m.name === "a.gguf")?.requests,
    1,
    "the request went through the server's cache",
  );

  const local = await runCliIn(s.cwd, env, ["run", "a", "Hello", "--local", ...GREEDY]);
  assert.equal(local.code, 0, local.stderr);
  assert.doesNotMatch(local.stderr, /using the running server/);
  assert.equal(local.stdout, served.stdout, "the same greedy answer, loaded in this process");
  assert.equal(
    (await s.getJson<CacheStats>("/v1/cache/stats")).body.models.find((m) => m.name === "a.gguf")?.requests,
    1,
  );

  const locked = await startTestServer(t, {
    models: { gguf: { "b.gguf": { seed: 1 } } },
    config: { server: { api_key: "sesame" } },
  });
  const refused = await runCliIn(locked.cwd, { ...locked.env, INFERNO_SERVER__API_KEY: "" }, [
    "run",
    "b",
    "Hello",
    "--server",
    locked.url,
    ...GREEDY,
  ]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /refused the API key .*--api-key KEY, INFERNO_SERVER__API_KEY=KEY or `inferno config set server.api_key KEY`/,
  );
  const keyed = await runCliIn(locked.cwd, { ...locked.env, INFERNO_SERVER__API_KEY: "" }, [
    "run",
    "b",
    "Hello",
    "--server",
    locked.url,
    "--api-key",
    "sesame",
    ...GREEDY,
  ]);
  assert.equal(keyed.code, 0, keyed.stderr);
});

test("run's chat through a server: a history longer than the server's context loses its oldest turns", async (t) => {
  // The demo model's weights: greedy, it never picks the end token here.
  const s = await startTestServer(t, { models: { gguf: { "demo.gguf": { preset: "small", type: "q8_0", seed: 1 } } } });
  const context = s.runtime.config.backend.context_size;
  const env = { ...s.env, INFERNO_SERVER__PORT: String(s.server.port) };
  // Seven answers of 100 tokens alone outgrow the context: the later turns fit only because the oldest were cut.
  const lines = ["Hello", "Again", "Third", "Fourth", "Fifth", "Sixth", "Seventh"];
  const chat = await runCliIn(
    s.cwd,
    env,
    ["--verbose", "run", "demo", "--max-tokens", "100", "--temperature", "0"],
    lines,
  );
  assert.equal(chat.code, 0, chat.stderr);
  assert.match(chat.stderr, /using the running server/);
  const turns = [...chat.stderr.matchAll(/(\d+) prompt \+ (\d+) completion tokens/g)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );
  assert.equal(turns.length, lines.length, chat.stderr);
  assert.ok(
    turns.reduce((sum, [, completion]) => sum + completion, 0) > context,
    "the answers alone are longer than the context",
  );
  for (const [prompt, completion] of turns)
    assert.ok(prompt + completion <= context, `${prompt} + ${completion} of ${context}`);
});

test("run given a load flag (--models-dir, --context-size…) loads in this process even with a server running, and says so", async (t) => {
  const s = await startTestServer(t, { models: { gguf: { "a.gguf": { seed: 1 } } } });
  const env = { ...s.env, INFERNO_SERVER__PORT: String(s.server.port), INFERNO_BACKEND__THREADS: "1" };
  // `models demo DIR` prints a hint naming --models-dir: it works as printed while the server (without that model) runs.
  const demo = await runCliIn(s.cwd, env, ["models", "demo", "elsewhere"]);
  const dir = /try: inferno run --models-dir "([^"]+)" inferno-demo "Once upon a time"/.exec(demo.stderr)?.[1];
  assert.ok(dir, demo.stderr);
  const hinted = await runCliIn(s.cwd, env, [
    "run",
    "--models-dir",
    dir,
    "inferno-demo",
    "Once upon a time",
    ...GREEDY,
  ]);
  assert.equal(hinted.code, 0, hinted.stderr);
  assert.match(
    hinted.stderr,
    new RegExp(`^--models-dir given: loading the model in this process, not on the running server at ${s.url}`),
  );
  assert.ok(hinted.stdout.trim().length > 0);
  const stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  assert.equal(stats.misses + stats.hits, 0, "the server was not asked");

  const both = await runCliIn(s.cwd, env, ["run", "a", "Hello", "--server", s.url, "--context-size", "256"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^error: --context-size set how a model loads in this process, and --server asks/);
});

async function runCliIn(
  cwd: string,
  env: Record<string, string>,
  args: string[],
  stdin?: string[],
): Promise<CliResult> {
  const { runCli } = await import("../../testkit/cli.js");
  return runCli(args, { cwd, env, ...(stdin ? { stdin } : {}) });
}
