/**
 * Keeps the bench's baselines honest (issue 25): node-llama-cpp called directly and the bare `node:http` floor each run
 * in a process of their own — never the bench's, never each other's — and the variant order the sections use is
 * shuffled per round (a fixed rotation biased an A/A control to 0.81×).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { interleaved, roundOrders } from "../testkit/stats.js";
import { tempDir } from "../testkit/tmp.js";
import { descendants, processCpuMs } from "../testkit/process.js";
import { type Generation, ownProcess } from "./own-process.js";
import { postJson } from "./server.js";
import { Agent } from "node:http";
import { figure, formatFigureValue, tooBusy, withControl } from "./report.js";

it("the baselines run in processes of their own: the pids differ from the bench's and from each other", async (t) => {
  const path = join(await tempDir(t), "nano.gguf");
  await writeTinyLlamaGguf(path, { preset: "nano" });
  const direct = await ownProcess(1);
  t.after(() => direct.close());
  const floor = await ownProcess(1);
  t.after(() => floor.close());
  for (const baseline of [direct, floor]) await baseline.call("load", { path, contextSize: 256, sequences: 2 });

  const generation = await direct.call<Generation>("complete", { prompt: "Once upon a time", maxTokens: 4 });
  assert.ok(generation.tokens >= 1 && generation.ms > 0 && generation.firstMs <= generation.ms);
  const { url, pid: floorPid } = await floor.call<{ url: string }>("serve");
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const answer = JSON.parse(await postJson(agent, `${url}/`, { prompt: "Once upon a time", max_tokens: 4 }));
  assert.equal(typeof answer.text, "string");

  const pids = [process.pid, generation.pid, floorPid];
  assert.equal(new Set(pids).size, 3, `bench ${pids[0]}, direct ${pids[1]}, floor ${pids[2]}`);
  assert.deepEqual([direct.pid, floor.pid], [generation.pid, floorPid]);
  // Both are children of the bench, and their CPU time is readable for the per-request sums.
  assert.ok(descendants(process.pid).includes(direct.pid) && descendants(process.pid).includes(floor.pid));
  assert.ok(processCpuMs(direct.pid) > 0 && generation.cpuMs > 0);

  // The bare hop (the fleet bench's floor): a proxy in a process of its own passes the floor's answer through.
  const proxy = await ownProcess(1);
  t.after(() => proxy.close());
  const { url: proxyUrl, pid: proxyPid } = await proxy.call<{ url: string }>("proxy", { target: url });
  assert.ok(![process.pid, generation.pid, floorPid].includes(proxyPid));
  const proxied = JSON.parse(await postJson(agent, `${proxyUrl}/`, { prompt: "Once upon a time", max_tokens: 4 }));
  assert.deepEqual(proxied, answer, "greedy: the same text through the hop");
  // The floors beside it: a TCP relay, and the least HTTP-aware forward (which reads the body's model), several
  // requests each over kept connections.
  const floors = await ownProcess(1);
  t.after(() => floors.close());
  for (const op of ["relay", "route"]) {
    const { url: hopUrl } = await floors.call<{ url: string }>(op, { target: url });
    for (let i = 0; i < 3; i++) {
      const request = { model: "nano", prompt: "Once upon a time", max_tokens: 4 };
      assert.deepEqual(JSON.parse(await postJson(agent, `${hopUrl}/`, request)), answer, `${op}, request ${i + 1}`);
    }
  }

  const together = await direct.call<{ tokens: number }>("concurrent", {
    prompt: "Once upon a time",
    maxTokens: 4,
    clients: 2,
  });
  assert.ok(together.tokens >= 2, "one generation per sequence, at once");
});

it("the bench shuffles its variant order every round, and an A/A control outside 0.95-1.05 marks the section noisy", async () => {
  const seen: number[] = [];
  await interleaved(
    [0, 1, 2, 3].map((i) => async () => void seen.push(i)),
    12,
    { seed: 3, warmup: 0 },
  );
  const rounds = Array.from({ length: 12 }, (_, r) => seen.slice(r * 4, r * 4 + 4).join());
  assert.ok(new Set(rounds).size > 6, `orders: ${rounds.join(" | ")}`);
  assert.deepEqual(
    rounds,
    roundOrders(4, 12, 3).map((o) => o.join()),
  );

  const target = figure({ section: "s", name: "x", samples: [2, 2, 2], unit: "×", target: { max: 1.5 } });
  const quiet = withControl("s", [1, 1.01, 0.99], "base", [target]);
  assert.deepEqual(
    quiet.map((f) => [f.met, f.noisy]),
    [
      [true, undefined],
      [false, undefined],
    ],
  );
  // A machine whose load exceeds its cores is too busy to measure, whatever the control read.
  assert.equal(tooBusy({ before: 2.5, after: 1 }, 2), true);
  assert.equal(tooBusy({ before: 1.2, after: 1.9 }, 2), false);
  const noisy = withControl("s", [0.8, 0.81, 0.85], "base", [target]);
  assert.deepEqual(
    noisy.map((f) => [f.met, f.noisy]),
    [
      [null, true],
      [null, true],
    ],
  );
});

it("a figure that misses or meets its target by less than the rounding prints with the decimals that show it", () => {
  const show = (value: number, target: { max?: number; min?: number } | null, unit = "×") =>
    formatFigureValue({ value, unit, target });
  assert.equal(show(275 / 685, { max: 0.4 }), "0.401×", "a miss by 0.0015 is not printed as the bound");
  assert.equal(show(0.3996, { max: 0.4 }), "0.3996×");
  assert.equal(show(0.4, { max: 0.4 }), "0.40×", "on the bound: as usual");
  assert.equal(show(0.41, { max: 0.4 }), "0.41×", "apart at the usual rounding: as usual");
  assert.equal(show(1.0002, { min: 0.95, max: 1 }), "1.0002×");
  assert.equal(show(0.4013, null), "0.40×", "no target: as usual");
  assert.equal(show(0.5049, { max: 0.5 }, "ms"), "0.505 ms");
});
