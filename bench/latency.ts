/**
 * The latency users feel (issue 25), each against node-llama-cpp in a fresh process of its own (bench/own-process.mjs,
 * timed there):
 *
 * - time to first token, warm (model loaded), and the time between streamed pieces (p50, p99) over a greedy 64-token
 *   completion streamed from `inferno serve` (its defaults: model hosts) to a client in this process; the baseline
 *   measured twice per round as two variants is the section's A/A control;
 * - time to first token, cold: the model not loaded (the server's spare host ready), the file in the page cache and
 *   dropped from it (`posix_fadvise` DONTNEED through `dd iflag=nocache`, which needs no root: the bench owns the file);
 *   the baseline loads the model, creates its context and streams its first token in a fresh process with llama.cpp
 *   started; and the same cold request to a server without the spare host (`backend.spare_host = false`): its cost;
 * - start-up: `inferno serve` from its process start to `GET /ready` answering 200 with 1, 20 and 100 models in its
 *   folder (no state file), in ms;
 * - memory: the resident set (VmRSS) of an idle model host holding the model and of the spare host, and of the whole
 *   idle server (server and hosts) with and without the spare.
 *
 * Variants run in an order shuffled each round. Part of `npm run bench` (`-- --only latency`).
 */
import { readlinkSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { Agent, get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { formatBytes, MIB } from "../src/units.js";
import { descendants, residentBytes } from "../testkit/process.js";
import {
  freshSeed,
  interleaved,
  median,
  percentile,
  ratioOfPercentiles,
  ratios,
  roundOrders,
} from "../testkit/stats.js";
import { dropFromPageCache, rawRead } from "./cold-load.js";
import { type Generation, ownProcess, type ServeProcess, serveProcess } from "./own-process.js";
import { type Figure, figure, withControl } from "./report.js";
import { postStream, requestTarget, serveArgs } from "./server.js";

const MODEL = "medium.gguf";
const PROMPT = "Once upon a time";
const TOKENS = 64;
const CONTEXT = 256;
const SECTION = "latency";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Status of a GET, the body dropped. */
function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    get(url, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    }).on("error", () => resolve(0));
  });
}

/** Unloads the model from a server and waits until its spare host (if it keeps one) has had time to be ready. */
async function unload(server: ServeProcess, spareMs: number): Promise<void> {
  const response = await fetch(`${server.url}/v1/cache/models/${MODEL}?force=true`, { method: "DELETE" });
  if (!response.ok) throw new Error(`unloading ${MODEL} answered ${response.status}: ${await response.text()}`);
  await sleep(spareMs);
}

async function warmLatency(dir: string, server: ServeProcess, rounds: number, seed: number): Promise<Figure[]> {
  const baseline = await ownProcess(1);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await baseline.call("load", { path: join(dir, MODEL), contextSize: CONTEXT, sequences: 1 });
    const target = requestTarget(`${server.url}/v1/completions`);
    const body = { model: MODEL, prompt: PROMPT, max_tokens: TOKENS, temperature: 0, stream: true };
    const inferno = { first: [] as number[], gap: [] as number[], gaps: [] as number[] };
    const own = { first: [] as number[], gap: [] as number[], gaps: [] as number[] };
    const again: number[] = [];
    const direct = () => baseline.call<Generation>("complete", { prompt: PROMPT, maxTokens: TOKENS });
    await postStream(agent, target, body);
    await direct();
    await interleaved(
      [
        async () => {
          const r = await postStream(agent, target, body);
          inferno.first.push(r.firstMs);
          inferno.gap.push(median(r.gaps));
          inferno.gaps.push(...r.gaps);
        },
        async () => {
          const r = await direct();
          own.first.push(r.firstMs);
          own.gap.push(median(r.gaps));
          own.gaps.push(...r.gaps);
        },
        async () => again.push((await direct()).firstMs),
      ],
      rounds,
      { seed, warmup: 0 },
    );
    const baselineName = "node-llama-cpp, own process";
    const figures = [
      figure({
        section: SECTION,
        name: "time to first token, warm",
        samples: ratios(inferno.first, own.first),
        unit: "×",
        baseline: baselineName,
        note: `${median(inferno.first).toFixed(2)} vs ${median(own.first).toFixed(2)} ms; streamed POST /v1/completions, medium f32, 1 thread`,
      }),
      figure({
        section: SECTION,
        name: "time between streamed tokens, p50",
        samples: ratios(inferno.gap, own.gap),
        unit: "×",
        baseline: baselineName,
        note: `${median(inferno.gaps).toFixed(2)} vs ${median(own.gaps).toFixed(2)} ms; ${TOKENS} tokens per answer`,
      }),
      figure({
        section: SECTION,
        name: "time between streamed tokens, p99",
        samples: ratioOfPercentiles(inferno.gaps, own.gaps, 99),
        unit: "×",
        baseline: baselineName,
        note: `${percentile(inferno.gaps, 99).toFixed(2)} vs ${percentile(own.gaps, 99).toFixed(2)} ms over ${inferno.gaps.length} gaps`,
      }),
    ];
    return withControl(SECTION, ratios(again, own.first), "node-llama-cpp's first token", figures);
  } finally {
    agent.destroy();
    await baseline.close();
  }
}

/** Time to the first streamed piece of a request for a model that is not loaded, from a fresh connection. */
async function coldFirst(server: ServeProcess): Promise<number> {
  const agent = new Agent({ keepAlive: false });
  try {
    const r = await postStream(agent, requestTarget(`${server.url}/v1/completions`), {
      model: MODEL,
      prompt: PROMPT,
      max_tokens: 1,
      temperature: 0,
      stream: true,
    });
    return r.firstMs;
  } finally {
    agent.destroy();
  }
}

async function coldLatency(
  dir: string,
  servers: { spare: ServeProcess; none: ServeProcess },
  rounds: number,
  seed: number,
  pageCaches: ReadonlyArray<"warm" | "dropped">,
  spareMs: number,
): Promise<Figure[]> {
  const path = join(dir, MODEL);
  const figures: Figure[] = [];
  for (const pageCache of pageCaches) {
    const prepare = () => (pageCache === "dropped" ? dropFromPageCache(path) : rawRead(path));
    const times = { spare: [] as number[], none: [] as number[], own: [] as number[] };
    const variants: Array<[keyof typeof times, () => Promise<number>]> = [
      [
        "spare",
        async () => {
          await unload(servers.spare, spareMs);
          await prepare();
          return coldFirst(servers.spare);
        },
      ],
      [
        "none",
        async () => {
          await unload(servers.none, 0);
          await prepare();
          return coldFirst(servers.none);
        },
      ],
      [
        "own",
        async () => {
          const fresh = await ownProcess(1);
          try {
            await prepare();
            return (await fresh.call<{ firstMs: number }>("cold", { path, contextSize: CONTEXT, prompt: PROMPT }))
              .firstMs;
          } finally {
            await fresh.close();
          }
        },
      ],
    ];
    for (const order of roundOrders(variants.length, rounds, seed)) {
      for (const i of order) {
        const [name, run] = variants[i] as (typeof variants)[number];
        times[name].push(await run());
      }
    }
    const base = `node-llama-cpp: load, context, first token in a fresh process`;
    figures.push(
      figure({
        section: SECTION,
        name: `time to first token, cold, page cache ${pageCache}`,
        samples: ratios(times.spare, times.own),
        unit: "×",
        baseline: base,
        note: `${median(times.spare).toFixed(0)} vs ${median(times.own).toFixed(0)} ms; the spare host ready, medium f32`,
      }),
      figure({
        section: SECTION,
        name: `time to first token, cold, page cache ${pageCache}, backend.spare_host = false`,
        samples: ratios(times.none, times.own),
        unit: "×",
        baseline: base,
        note: `${median(times.none).toFixed(0)} vs ${median(times.own).toFixed(0)} ms: the cost of no spare is the host's start`,
      }),
    );
  }
  return figures;
}

async function startup(root: string, counts: readonly number[], rounds: number, seed: number): Promise<Figure[]> {
  const ms = new Map<number, number[]>(counts.map((n) => [n, []]));
  const dirs = new Map<number, string>();
  for (const n of counts) {
    const dir = join(root, `models-${n}`);
    await mkdir(dir, { recursive: true });
    await writeTinyLlamaGguf(join(dir, "m0.gguf"), { preset: "nano" });
    for (let i = 1; i < n; i++) await copyFile(join(dir, "m0.gguf"), join(dir, `m${i}.gguf`));
    dirs.set(n, dir);
  }
  for (const order of roundOrders(counts.length, rounds, seed)) {
    for (const i of order) {
      const n = counts[i] as number;
      const dir = dirs.get(n) as string;
      const started = performance.now();
      const server = await serveProcess(dir, serveArgs(dir));
      try {
        while ((await status(`${server.url}/ready`)) !== 200) await sleep(10);
        ms.get(n)?.push(performance.now() - started);
      } finally {
        await server.stop();
        await rm(join(dir, ".cache"), { recursive: true, force: true });
      }
    }
  }
  const one = ms.get(counts[0] as number) ?? [];
  return counts.map((n) =>
    figure({
      section: SECTION,
      name: `start-up to /ready, ${n} model${n === 1 ? "" : "s"}`,
      samples: ms.get(n) ?? [],
      unit: "ms",
      note:
        n === counts[0]
          ? "inferno serve from its process start; no state file"
          : `${median(ratios(ms.get(n) ?? [], one)).toFixed(2)}× the time with ${counts[0]} model`,
    }),
  );
}

/**
 * A server's model hosts: its descendants that run Node (under tsx, each Node process also has an esbuild service
 * child, which is no host).
 */
function hostsOf(server: ServeProcess): number[] {
  return descendants(server.child.pid as number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/exe`) === process.execPath;
    } catch {
      return false;
    }
  });
}

/** The resident set of every process of a server (itself and its hosts). */
const serverRss = (server: ServeProcess) =>
  [server.child.pid as number, ...hostsOf(server)].reduce((sum, pid) => sum + residentBytes(pid), 0);

export async function latencyBench(options: { quick: boolean; seed?: number }): Promise<Figure[]> {
  const seed = options.seed ?? freshSeed();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-latency-"));
  const opened: ServeProcess[] = [];
  try {
    await writeTinyLlamaGguf(join(dir, MODEL), { preset: "medium" });
    // Two servers on one folder: neither keeps a state file (they would share it).
    const noState = { INFERNO_CACHE__PERSIST_CACHE: "false" };
    const spare = await serveProcess(dir, serveArgs(dir), noState);
    opened.push(spare);
    const none = await serveProcess(dir, serveArgs(dir), { ...noState, INFERNO_BACKEND__SPARE_HOST: "false" });
    opened.push(none);
    // Give both time to start what they start (the spare host, its warm-up), then measure them idle.
    await sleep(options.quick ? 6000 : 10_000);
    const idleSpare = hostsOf(spare);
    const idle = { spare: serverRss(spare), none: serverRss(none) };
    const figures = await warmLatency(dir, spare, options.quick ? 5 : 30, seed);
    // The old spare now holds the model; the host started after the load is the new spare.
    const hosts = hostsOf(spare);
    const modelHost = hosts.find((pid) => idleSpare.includes(pid));
    const newSpare = hosts.find((pid) => !idleSpare.includes(pid));
    const memory = (name: string, bytes: number, note: string) =>
      figure({ section: SECTION, name, samples: Math.round((bytes / MIB) * 10) / 10, unit: "MiB", note });
    figures.push(
      memory(
        "RSS of an idle model host holding the model",
        modelHost === undefined ? NaN : residentBytes(modelHost),
        `medium f32 loaded, after the warm requests; hosts before the load ${idleSpare.join(", ")}, after ${hosts.join(", ")}`,
      ),
      memory("RSS of the spare host", newSpare === undefined ? NaN : residentBytes(newSpare), "started after the load"),
      memory(
        "RSS of an idle server, nothing loaded, with the spare host",
        idle.spare,
        `server and hosts; ${formatBytes(idle.none)} with backend.spare_host = false`,
      ),
    );
    figures.push(
      ...(await coldLatency(
        dir,
        { spare, none },
        options.quick ? 1 : 7,
        seed,
        options.quick ? ["warm"] : ["warm", "dropped"],
        options.quick ? 3000 : 5000,
      )),
    );
    for (const server of opened.splice(0)) await server.stop();
    figures.push(...(await startup(dir, [1, 20, 100], options.quick ? 1 : 3, seed)));
    return figures;
  } finally {
    for (const server of opened) await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
