/** `inferno cache events` / `inferno cache watch` against a live server (the real cache on the fake backend). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { eventLine } from "../../src/cli/actions/cache-events.js";
import { cliSandbox } from "../helpers/cli.js";
import { startFakeServer } from "../helpers/fake-server.js";

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const [command, json] of [
  ["events", true],
  ["watch", false],
] as const) {
  it(`cache ${command}${json ? " --json" : ""} prints the server's events until the server stops`, async (t) => {
    const s = await startFakeServer(t, { behaviours: { "a.gguf": { loadMs: 20, memoryBytes: 5_000_000 } } });
    const cli = await cliSandbox(t);
    const running = cli.run(["cache", command, "--server", s.url, ...(json ? ["--json"] : [])]);
    await until(() => s.server.app.events.clientCount === 1, "the CLI to connect");

    await s.cache.load("a.gguf");
    (await s.cache.acquire("a.gguf")).release();
    await s.cache.evict("a.gguf");
    await s.cache.saveCache();
    await s.stop();
    const result = await running;

    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    if (json) {
      const events = lines.map((l) => JSON.parse(l) as { type: string; name?: string; reason?: string });
      const types = events.map((e) => e.type).filter((type) => type !== "loading");
      assert.deepEqual(types.slice(0, 4), ["loaded", "hit", "evicted", "saved"]);
      assert.equal(events.find((e) => e.type === "evicted")?.reason, "manual");
    } else {
      assert.match(result.stdout, /^\d\d:\d\d:\d\d loaded +a\.gguf \d+ms bytes=4\.8 MiB$/m);
      assert.match(
        result.stdout,
        /^\d\d:\d\d:\d\d evicted +a\.gguf reason=manual idle_seconds=\d+\.\d resident_seconds=\d+\.\d$/m,
      );
      assert.match(result.stdout, /^\d\d:\d\d:\d\d saved +ok=true/m);
    }
    assert.match(result.stderr, /stopped/);
  });
}

it("cache events without a running server says so and fails", async (t) => {
  const cli = await cliSandbox(t);
  const result = await cli.run(["cache", "events", "--server", "http://127.0.0.1:9"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /no Inferno server answers at http:\/\/127\.0\.0\.1:9/);
});

it("eventLine shows a load failure's code and message", () => {
  const line = eventLine({
    type: "load_failed",
    time: "2026-11-29T16:20:01.000Z",
    name: "x.gguf",
    key: "/m/x.gguf",
    code: "model_load_failed",
    message: "bad file",
  });
  assert.equal(line, "16:20:01 load_failed   x.gguf code=model_load_failed message=bad file");
});
