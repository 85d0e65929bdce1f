/**
 * A model host that stops answering (SIGSTOP: alive, silent) — issue 23, item 1. The watchdog kills it within its
 * bound (here `backend.host_timeout_seconds = 2`) and counts a crash: the stream ends with an error, an idle stopped
 * host's next request gets 503 with `Retry-After`, evict does not wait beyond the bound, the request after loads again.
 */
import assert from "node:assert/strict";
import { it, type TestContext } from "node:test";
import { APIError } from "openai";
import { HOSTED, loaded, loadedModel, running, stats } from "../../testkit/hosts.js";
import { startTestServer, waitFor } from "../../testkit/server.js";

const BOUND_S = 2;
/** The bound, a ping interval and scheduling on a busy 2-core machine. */
const SLACK_MS = 6000;
const config = { cache: { enable_warmup: false }, backend: { ...HOSTED, host_timeout_seconds: BOUND_S } };

async function hostPid(s: Awaited<ReturnType<typeof startTestServer>>, name: string): Promise<number> {
  const model = await loadedModel(s, name);
  assert.ok(model?.pid, `${name} runs in a host`);
  return model.pid;
}

/** A server whose model `a.gguf` is loaded in a host (whose pid it returns); the host is killed after the test. */
async function servingFromHost(t: TestContext) {
  const s = await startTestServer(t, { models: { gguf: { "a.gguf": { seed: 1 } } }, config });
  const client = s.openai();
  await client.completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 1 });
  const pid = await hostPid(s, "a.gguf");
  t.after(() => void (running(pid).then((alive) => alive && process.kill(pid, "SIGKILL")) as unknown));
  return { s, client, pid };
}

it("SIGSTOP to a host mid-stream: the stream ends with an error within the watchdog bound, the host is killed, evictions.crashed is 1, the next request loads again", async (t) => {
  const { s, client, pid } = await servingFromHost(t);

  const stream = await client.completions.create({
    model: "a.gguf",
    prompt: "Once",
    max_tokens: 400,
    stream: true,
    temperature: 0,
  });
  let stoppedAt = 0;
  await assert.rejects(
    (async () => {
      for await (const _chunk of stream) {
        if (stoppedAt === 0) {
          process.kill(pid, "SIGSTOP");
          stoppedAt = performance.now();
        }
      }
    })(),
    (error: Error) => {
      assert.ok(error instanceof APIError, String(error));
      assert.match(error.message, /stopped answering/);
      return true;
    },
  );
  assert.ok(stoppedAt > 0);
  const waited = performance.now() - stoppedAt;
  assert.ok(waited < BOUND_S * 1000 + SLACK_MS, `the stream ended ${Math.round(waited)} ms after SIGSTOP`);
  await waitFor(async () => !(await running(pid)));
  await waitFor(async () => (await stats(s)).evictions.crashed === 1);
  assert.deepEqual(await loaded(s), [], "the hung model was unloaded (its lease released)");

  const again = await client.completions.create({ model: "a.gguf", prompt: "Once", max_tokens: 3, temperature: 0 });
  assert.equal(again.choices[0]?.finish_reason, "length");
  assert.notEqual(await hostPid(s, "a.gguf"), pid, "loaded again in a new host");
});

it("SIGSTOP to an idle host: a request gets 503 with Retry-After and evict returns, both within the bound; /health stays ok and the next request loads again", async (t) => {
  const { s, client, pid } = await servingFromHost(t);
  process.kill(pid, "SIGSTOP");
  const started = performance.now();
  const body = JSON.stringify({ model: "a.gguf", prompt: "Hi", max_tokens: 2 });
  const [answer, evicted] = await Promise.all([
    fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }),
    (async () => {
      // Once the request holds its lease: evict then has to wait for it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      return fetch(`${s.url}/v1/cache/models/a.gguf`, { method: "DELETE" });
    })(),
  ]);
  const elapsed = performance.now() - started;
  assert.equal(answer.status, 503, await answer.clone().text());
  assert.ok(Number(answer.headers.get("retry-after")) >= 1);
  assert.match(((await answer.json()) as { error: { message: string } }).error.message, /stopped answering/);
  assert.ok(evicted.status < 500, `evict answered ${evicted.status}`);
  assert.ok(elapsed < BOUND_S * 1000 + SLACK_MS, `answered ${Math.round(elapsed)} ms after SIGSTOP`);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
  await waitFor(async () => !(await running(pid)));
  // One unload: counted `manual` when the evict came first (it asked, and waited for the lease the watchdog ended).
  const { evictions } = await stats(s);
  assert.equal(evictions.crashed + evictions.manual, 1);
  assert.deepEqual(await loaded(s), []);

  const again = await client.completions.create({ model: "a.gguf", prompt: "Once", max_tokens: 3, temperature: 0 });
  assert.equal(again.choices[0]?.finish_reason, "length");
});
