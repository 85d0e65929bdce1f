/**
 * Model hosts that stop answering (issue 23, item 1): a host is stopped (SIGSTOP) in the middle of a streamed
 * completion, or while idle just before a request and an evict arrive. The watchdog (`backend.host_timeout_seconds`,
 * here 2) must end each within its bound: the stream with an error, the request with a 503 and `Retry-After`, the
 * evict with an answer; the host killed and counted as crashed (or evicted), no lease left, and the next request
 * loads the model again in a new host. A host stopped and continued within the bound is no crash.
 */
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { alive, gone } from "../../testkit/process.js";
import { startStressServer, type StressServer } from "../server.js";

export interface HungHostParams {
  /** Rounds of (stop mid-stream, stop while idle, a short stop). */
  rounds: number;
}

const MODEL = "tiny.gguf";
const BOUND_S = 2;
/** A ping interval and scheduling on a busy machine, beyond the bound. */
const SLACK_MS = 6000;

async function hostPid(s: StressServer): Promise<number | null> {
  const { data } = await s.getJson<{ data: Array<{ name: string; pid?: number | null }> }>("/v1/cache/models");
  return data.find((m) => m.name === MODEL)?.pid ?? null;
}

async function evictions(s: StressServer): Promise<number> {
  const stats = await s.getJson<{ evictions: Record<string, number> }>("/v1/cache/stats");
  return (stats.evictions.crashed ?? 0) + (stats.evictions.manual ?? 0);
}

const body = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: MODEL, prompt: "Once", max_tokens: 2, temperature: 0, ...extra });
const JSON_HEADERS = { "content-type": "application/json" };

export const hungHostScenario: Scenario<HungHostParams> = {
  name: "hung-host",
  title: "SIGSTOPped model hosts: streams end, requests get 503, evict returns, all within the watchdog's bound",
  full: { rounds: 5 },
  bounded: { rounds: 1 },
  async run(params) {
    const tally = new Tally();
    await withTempDir("hung", async (root) => {
      const s = await startStressServer({
        root,
        models: [MODEL],
        // No cooldown: a model that crashes twice within it is refused for a while, by design (isolation-cooldown).
        settings: {
          "backend.isolation": "process",
          "backend.host_timeout_seconds": BOUND_S,
          "cache.load_failure_cooldown_seconds": 0,
        },
      });
      const stopped: number[] = [];
      try {
        let worst = 0;
        const ended = (started: number) => {
          const ms = performance.now() - started;
          worst = Math.max(worst, ms);
          return ms;
        };
        for (let round = 0; round < params.rounds; round++) {
          tally.phase("mid-stream");
          tally.check((await s.post("/v1/completions", JSON.parse(body()))).status === 200, () => "a load failed");
          let pid = await hostPid(s);
          if (!tally.check(pid !== null, () => "the model runs in no host")) break;
          const before = await evictions(s);
          const stream = await fetch(`${s.url}/v1/completions`, {
            method: "POST",
            headers: JSON_HEADERS,
            body: body({ max_tokens: 400, stream: true }),
          });
          const reader = stream.body?.getReader();
          await reader?.read();
          process.kill(pid as number, "SIGSTOP");
          stopped.push(pid as number);
          let started = performance.now();
          let text = "";
          for (;;) {
            const next = await reader?.read().catch(() => ({ done: true as const, value: undefined }));
            if (!next || next.done) break;
            text += Buffer.from(next.value).toString();
          }
          const streamMs = ended(started);
          tally.count("streams");
          tally.check(/stopped answering/.test(text), () => "a stopped host's stream ended without the error event");
          tally.check(
            streamMs < BOUND_S * 1000 + SLACK_MS,
            () => `a stream ended ${Math.round(streamMs)} ms after SIGSTOP`,
          );
          tally.check(
            !alive(pid as number) || (await gone(pid as number, 5000)),
            () => "a stopped host was not killed",
          );
          tally.check((await evictions(s)) === before + 1, () => "a hung host's model was not unloaded");

          tally.phase("idle");
          tally.check((await s.post("/v1/completions", JSON.parse(body()))).status === 200, () => "a reload failed");
          pid = await hostPid(s);
          if (pid === null) break;
          process.kill(pid, "SIGSTOP");
          stopped.push(pid);
          started = performance.now();
          const [answer, evicted] = await Promise.all([
            fetch(`${s.url}/v1/completions`, { method: "POST", headers: JSON_HEADERS, body: body() }),
            new Promise((resolve) => setTimeout(resolve, 200)).then(() =>
              fetch(`${s.url}/v1/cache/models/${MODEL}`, { method: "DELETE" }),
            ),
          ]);
          const idleMs = ended(started);
          tally.count("idle_requests");
          tally.check(
            answer.status === 503 && Number(answer.headers.get("retry-after")) >= 1,
            () =>
              `a request to a stopped host answered ${answer.status} (Retry-After ${answer.headers.get("retry-after")})`,
          );
          tally.check(evicted.status < 500, () => `evict of a stopped host answered ${evicted.status}`);
          tally.check(
            idleMs < BOUND_S * 1000 + SLACK_MS,
            () => `a stopped host held requests ${Math.round(idleMs)} ms`,
          );

          tally.phase("short stop");
          tally.check((await s.post("/v1/completions", JSON.parse(body()))).status === 200, () => "a reload failed");
          pid = await hostPid(s);
          if (pid === null) break;
          const quiet = await evictions(s);
          const pending = fetch(`${s.url}/v1/completions`, { method: "POST", headers: JSON_HEADERS, body: body() });
          process.kill(pid, "SIGSTOP");
          await new Promise((resolve) => setTimeout(resolve, (BOUND_S * 1000) / 4));
          process.kill(pid, "SIGCONT");
          const short = await pending;
          tally.count("short_stops");
          tally.check(
            short.status === 200,
            () => `a host stopped for a quarter of the bound failed its request (${short.status})`,
          );
          tally.check((await evictions(s)) === quiet, () => "a host stopped briefly was counted as crashed");
        }
        tally.set("worst_ms_to_answer", Math.round(worst));
        tally.set("bound_ms", BOUND_S * 1000);
        tally.phase(null);
      } finally {
        for (const pid of stopped) if (alive(pid)) process.kill(pid, "SIGKILL");
        await s.stop();
      }
    });
    return tally.result();
  },
};
