/**
 * What the HTTP server adds to a generation (issue 13, figure 1.6; re-based in issue 25): the same greedy 8-token
 * generations on a nano tiny llama, every party in a process of its own (bench/own-process.ts):
 *
 * - the baseline: node-llama-cpp called directly in a fresh process (`LlamaCompletion` / `LlamaChat`, timed there around
 *   the call), measured twice per round as two variants — the section's A/A control;
 * - the floor: a bare `node:http` server in its own process whose handler makes the same direct call (plain and
 *   streamed as server-sent events): what HTTP itself costs in Node;
 * - `inferno serve --isolation in-process` and `inferno serve` with its defaults (model hosts), each a process of its
 *   own, through `POST /v1/completions` and `POST /v1/chat/completions`, plain and streamed;
 * - the host hop: the hosted server's time less the in-process server's, per round, in ms.
 *
 * The client is this process (node:http, keep-alive). Variants run in an order shuffled every round. p50 figures are
 * medians of per-round ratios; p99 the ratio of the two p99s. CPU per request is summed over every process on the path:
 * the client, the server, its model hosts, or the baseline process (each note gives it against the direct call's).
 *
 * llama.cpp runs on one thread everywhere here: with two threads on a two-core machine its spin-waiting workers compete
 * with the event loops serving HTTP, and the ratios would measure thread scheduling rather than what the server adds.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, type IncomingMessage, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage } from "../src/backends/types.js";
import { type FlagValue, loadConfig } from "../src/config/index.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { freshSeed, interleaved, median, percentile, ratioOfPercentiles, ratios } from "../testkit/stats.js";
import { processCpuMs } from "../testkit/process.js";
import { type Generation, ownProcess, type ServeProcess, serveProcess } from "./own-process.js";
import { type Figure, figure, withControl } from "./report.js";

const MODEL = "bench.gguf";

/**
 * One POST with a JSON body, read to the end: Node's own HTTP client on a keep-alive connection, the lightest client a
 * Node program has (the global `fetch` costs about a millisecond more per request in this process, which would be
 * counted as server overhead).
 */
export function postJson(agent: Agent, url: string | RequestTarget, body: object): Promise<string> {
  return post(agent, url, body, (response, resolve, reject) => {
    let text = "";
    response.on("data", (chunk: string) => (text += chunk));
    response.on("end", () =>
      response.statusCode === 200
        ? resolve(text)
        : reject(new Error(`${url} answered ${response.statusCode}: ${text}`)),
    );
  });
}

/** One POST of a JSON body on `agent`; `read` takes the (utf-8) response and settles the promise. */
function post<T>(
  agent: Agent,
  url: string | RequestTarget,
  body: object,
  read: (response: IncomingMessage, resolve: (value: T) => void, reject: (error: Error) => void) => void,
): Promise<T> {
  const data = JSON.stringify(body);
  const { hostname, port, path } = typeof url === "string" ? requestTarget(url) : url;
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        hostname,
        port,
        path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
      },
      (response) => {
        response.setEncoding("utf8");
        response.on("error", reject);
        read(response, resolve, reject);
      },
    );
    request.on("error", reject);
    request.end(data);
  });
}

/** What a client sees of one streamed answer: the time to its first piece, between pieces, and to its end (ms). */
export interface StreamTimes {
  firstMs: number;
  gaps: number[];
  ms: number;
}

/**
 * One POST of a streamed (server-sent events) request, read to the end on `agent`'s keep-alive connection, timed as a
 * user's client sees it: from the request to the first event carrying text, between such pieces as they arrive (one
 * network read may carry several), and to the end.
 */
export function postStream(agent: Agent, url: string | RequestTarget, body: object): Promise<StreamTimes> {
  const started = performance.now();
  return post(agent, url, body, (response, resolve, reject) => {
    if (response.statusCode !== 200) {
      response.resume();
      return reject(new Error(`${url} answered ${response.statusCode}`));
    }
    let firstMs = NaN;
    let last = started;
    const gaps: number[] = [];
    response.on("data", (chunk: string) => {
      // A piece of text: an event other than the final [DONE] (and a usage-only event without text).
      if (!/"(text|content)":"[^"]/.test(chunk)) return;
      const now = performance.now();
      if (Number.isNaN(firstMs)) firstMs = now - started;
      else gaps.push(now - last);
      last = now;
    });
    response.on("end", () => resolve({ firstMs, gaps, ms: performance.now() - started }));
  });
}

/** Where a request goes, parsed from its URL once. */
export interface RequestTarget {
  hostname: string;
  port: number;
  path: string;
}

export function requestTarget(url: string): RequestTarget {
  const parsed = new URL(url);
  return { hostname: parsed.hostname, port: Number(parsed.port), path: `${parsed.pathname}${parsed.search}` };
}

const PROMPT = "Once upon a time";
const MAX_TOKENS = 8;
const MESSAGES: ChatMessage[] = [{ role: "user", content: PROMPT }];
/** In process, the server's target at p50 against the own-process floor (issue 25). */
const IN_PROCESS_TARGET = { max: 1.1 };
/** What the model host may add at p50, in ms (issue 25). */
const HOST_HOP_TARGET = { max: 0.5 };

/**
 * The settings every server benchmark runs with, as command-line flags: models from `dir`, the state file beside them
 * in a hidden folder (never scanned: a save does not look like a new model), one llama.cpp thread, a small context, no
 * GPU; the rest as a user gets it (model hosts included). `benchConfig` loads them; the warm restarts pass them to
 * `inferno serve` (bench/loads.ts).
 */
export function benchFlags(dir: string): FlagValue[] {
  return [
    { key: "models_dir", value: dir, flag: "--models-dir" },
    { key: "cache.cache_dir", value: join(dir, ".cache"), flag: "--cache-dir" },
    { key: "backend.context_size", value: 256, flag: "--context-size" },
    { key: "backend.gpu", value: false, flag: "--gpu" },
    { key: "backend.threads", value: 1, flag: "--threads" },
  ];
}

/** `inferno serve`'s arguments with `benchFlags` on a free port, and `extra` flags. */
export function serveArgs(dir: string, extra: string[] = []): string[] {
  return ["--port", "0", ...benchFlags(dir).flatMap(({ flag, value }) => [flag, String(value)]), ...extra];
}

/** The configuration of `benchFlags`, with HOME in `dir` (no user configuration applies); `persist` keeps a state file. */
export function benchConfig(dir: string, options: { persist?: boolean } = {}) {
  return loadConfig({
    env: { HOME: dir },
    cwd: dir,
    flags: [
      ...benchFlags(dir),
      { key: "cache.persist_cache", value: options.persist === true, flag: "--persist-cache" },
    ],
  });
}

const QUIET_CPU_MS = 50;
const QUIET_BOUND_MS = 60_000;

/**
 * Waits until the servers' processes (their model hosts included) spend under `QUIET_CPU_MS` of CPU in a second, or
 * `QUIET_BOUND_MS` has passed: the first request's load takes the spare model host, and the one that replaces it starts
 * (a process, llama.cpp, its warm-up: 1–2 s of CPU) while the first timed rounds would run — counted in the CPU per
 * request of whichever hosted variants ran then (a scratch run counted ~10 ms per hosted request where ~6 ms was the
 * steady figure), and taking a core from every variant.
 */
async function untilQuiet(servers: ServeProcess[]): Promise<void> {
  const cpu = () => servers.flatMap((server) => server.pids()).reduce((sum, pid) => sum + processCpuMs(pid), 0);
  const started = performance.now();
  while (performance.now() - started < QUIET_BOUND_MS) {
    const before = cpu();
    await sleep(1000);
    if (cpu() - before < QUIET_CPU_MS) return;
  }
}

/** One variant: what it runs, and the pids whose CPU time its requests spend (besides this process's). */
interface Variant {
  name: string;
  run: () => Promise<number>;
  cpuPids: () => number[];
}

export async function serverOverheadBench(options: { quick: boolean; seed?: number }): Promise<Figure[]> {
  // The host hop is a difference of two ~3-ms requests whose rounds spread by ±0.5 ms (p25–p75): 200 rounds left its
  // median 0.40–0.79 ms between quiet runs of the same code; 600 narrow that by √3.
  const rounds = options.quick ? 15 : 600;
  const seed = options.seed ?? freshSeed();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-"));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const open: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];
  try {
    const path = join(dir, MODEL);
    await writeTinyLlamaGguf(path, { preset: "nano" });
    const direct = await ownProcess(1);
    open.push(direct);
    await direct.call("load", { path, contextSize: 256, sequences: 1 });
    const floorProcess = await ownProcess(1);
    open.push(floorProcess);
    await floorProcess.call("load", { path, contextSize: 256, sequences: 1 });
    const { url: floorUrl } = await floorProcess.call<{ url: string }>("serve");
    const inProcess = await serveProcess(dir, serveArgs(dir), { INFERNO_BACKEND__ISOLATION: "in-process" });
    open.push(inProcess);
    const hosted = await serveProcess(dir, serveArgs(dir));
    open.push(hosted);

    // The direct calls are timed in the baseline process; its CPU time comes with each answer.
    // Each direct completion is also timed from here: the round trip less the call's own time is the bare process
    // hop, a wake-up of each process and a small message each way after the generation, with no Inferno code.
    let directCpu = 0;
    const bareHops: number[] = [];
    const directCall = (op: "complete" | "chat") => async () => {
      const started = performance.now();
      const reply = await direct.call<Generation>(op, { prompt: PROMPT, maxTokens: MAX_TOKENS });
      if (op === "complete") bareHops.push(performance.now() - started - reply.ms);
      directCpu = reply.cpuMs;
      return reply.ms;
    };
    const timedPost = (url: string, body: object) => {
      const target = requestTarget(url);
      return async () => {
        const started = performance.now();
        await postJson(agent, target, body);
        return performance.now() - started;
      };
    };
    const request = { model: MODEL, max_tokens: MAX_TOKENS, temperature: 0 };
    const routes = (label: string, server: ServeProcess): Variant[] =>
      [
        { path: "/v1/completions", body: { prompt: PROMPT } },
        { path: "/v1/chat/completions", body: { messages: MESSAGES } },
      ].flatMap(({ path: route, body }) =>
        [false, true].map((stream) => ({
          name: `${label}: POST ${route}${stream ? ", stream" : ""}`,
          run: timedPost(`${server.url}${route}`, { ...body, ...request, stream }),
          cpuPids: () => server.pids(),
        })),
      );
    const none = () => [];
    const variants: Variant[] = [
      { name: "direct complete()", run: directCall("complete"), cpuPids: none },
      { name: "direct complete() (again)", run: directCall("complete"), cpuPids: none },
      { name: "direct chat()", run: directCall("chat"), cpuPids: none },
      ...[false, true].map((stream) => ({
        name: `floor${stream ? ", stream" : ""}`,
        run: timedPost(`${floorUrl}/`, { prompt: PROMPT, max_tokens: MAX_TOKENS, stream }),
        cpuPids: () => [floorProcess.pid],
      })),
      ...routes("in process", inProcess),
      ...routes("hosts", hosted),
    ];
    // Warm every path (the first requests load the model and compile the servers' code), let the spare host that
    // replaces the one the load took finish starting, then fix each variant's pids: scanning /proc for a server's model
    // hosts per request would cost the client more than the request.
    for (let i = 0; i < 3; i++) for (const variant of variants) await variant.run();
    await untilQuiet([inProcess, hosted]);
    bareHops.length = 0;
    const pids = variants.map((variant) => variant.cpuPids());
    const cpuTotals = variants.map(() => 0);
    const timed = variants.map((variant, i) => async () => {
      const own = pids[i] as number[];
      const directBefore = directCpu;
      const othersBefore = own.reduce((sum, pid) => sum + processCpuMs(pid), 0);
      const clientBefore = process.cpuUsage();
      const ms = await variant.run();
      const client = process.cpuUsage(clientBefore);
      const others = own.reduce((sum, pid) => sum + processCpuMs(pid), 0) - othersBefore;
      cpuTotals[i] = (cpuTotals[i] ?? 0) + (client.user + client.system) / 1000 + others + (directCpu - directBefore);
      return ms;
    });
    // `interleaved` times each call from here; the direct variants' own figure is the baseline process's timing.
    const measured = variants.map(() => [] as number[]);
    await interleaved(
      timed.map((run, i) => async () => measured[i]?.push(await run())),
      rounds,
      { seed, warmup: 0 },
    );
    const ms = (name: string) => measured[variants.findIndex((v) => v.name === name)] ?? [];
    const cpu = (name: string) => (cpuTotals[variants.findIndex((v) => v.name === name)] ?? NaN) / rounds;
    const how = `${MAX_TOKENS} tokens, nano llama, 1 thread`;
    const cpuNote = (subject: string, baseline: string) =>
      `CPU per request over the path ${cpu(subject).toFixed(2)} vs ${cpu(baseline).toFixed(2)} ms`;
    const extra = (subject: number[], base: number[], q: number) => {
      const d = q === 50 ? median(subject) - median(base) : percentile(subject, q) - percentile(base, q);
      return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(2)} ms on ${(q === 50 ? median(base) : percentile(base, q)).toFixed(2)} ms`;
    };
    const pair = (name: string, subject: string, baseline: string, target: { max: number } | null): Figure[] => [
      figure({
        section: "server",
        item: "1.6",
        name: `${name} p50`,
        samples: ratios(ms(subject), ms(baseline)),
        unit: "×",
        baseline,
        target,
        note: `${extra(ms(subject), ms(baseline), 50)}; ${cpuNote(subject, baseline)}; ${how}`,
      }),
      figure({
        section: "server",
        item: "1.6",
        name: `${name} p99`,
        samples: ratioOfPercentiles(ms(subject), ms(baseline), 99),
        unit: "×",
        baseline,
        note: `${extra(ms(subject), ms(baseline), 99)} (p99 of ${rounds} rounds)`,
      }),
    ];
    const figures: Figure[] = [
      ...pair("floor: bare node:http server, own process", "floor", "direct complete()", null),
      ...pair("floor, stream", "floor, stream", "direct complete()", null),
    ];
    for (const [label, hop] of [
      ["in process", false],
      ["hosts", true],
    ] as const) {
      for (const route of ["/v1/completions", "/v1/chat/completions"])
        for (const stream of [false, true]) {
          const name = `${label}: POST ${route}${stream ? ", stream" : ""}`;
          const chat = route.includes("chat");
          const direct = chat ? "direct chat()" : "direct complete()";
          figures.push(...pair(name, name, direct, null));
          // In process against the floor (completions: the floor serves completions only).
          if (!hop && !chat)
            figures.push(...pair(`${name} vs floor`, name, stream ? "floor, stream" : "floor", IN_PROCESS_TARGET));
          if (hop) {
            const local = `in process: POST ${route}${stream ? ", stream" : ""}`;
            const added = ms(name).map((m, i) => m - (ms(local)[i] as number));
            figures.push(
              figure({
                section: "server",
                item: "1.6",
                name: `host hop: POST ${route}${stream ? ", stream" : ""} p50`,
                samples: added,
                unit: "ms",
                baseline: "the in-process server",
                target: HOST_HOP_TARGET,
                note: `per round, hosts less in process; ${ratioOfPercentiles(ms(name), ms(local), 99).toFixed(2)}× at p99; ${cpuNote(name, local)}`,
              }),
            );
          }
        }
    }
    figures.push(
      figure({
        section: "server",
        item: "1.6",
        name: "bare process hop: node-llama-cpp in its own process, called over IPC p50",
        samples: bareHops,
        unit: "ms",
        baseline: "the same call timed in its process",
        note: `the floor under the host hop: from the bench process, less the call's own time (${bareHops.length} calls); Node's IPC channel, no Inferno code on either side`,
      }),
    );
    const control = ratios(ms("direct complete() (again)"), ms("direct complete()"));
    return withControl("server", control, "direct complete()", figures);
  } finally {
    agent.destroy();
    for (const party of open.reverse()) await (party.stop ?? party.close)?.call(party);
    await rm(dir, { recursive: true, force: true });
  }
}
