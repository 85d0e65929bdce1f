/**
 * Every string a client names, at every size from 1 KiB up to 8 MiB (issue 23, item 3): model names on every route
 * that takes one, stop strings, tool and function names, tool call ids, `user`, metadata, `keep_alive`, field names,
 * and names in URLs. Each answer must be a 4xx (a 400 naming the limit beyond it, a 413 beyond the body limit, a 404
 * for an unknown name within it), never a 5xx, and small; and nothing of the strings may be kept: after all of them
 * the memory the server keeps (after a full collection), its event backlog and its log have grown by a bounded amount, not by what the requests held.
 */
import { request as httpRequest } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { STRING_LIMITS } from "../../src/server/strings.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { withStressServer } from "../server.js";

export interface HostileInputParams {
  /** String sizes tried, in bytes. */
  sizes: number[];
  /** Requests per field and size. */
  repeat: number;
}

const MODEL = "tiny.gguf";
const KIB = 1024;
const MIB = 1024 * KIB;
const user = [{ role: "user", content: "hi" }];
const LARGEST_LIMIT = Math.max(...Object.values(STRING_LIMITS));

/** Where a string goes: a route and a body built around it. */
const FIELDS: Record<string, [path: string, body: (s: string) => unknown]> = {
  "chat model": ["/v1/chat/completions", (s) => ({ model: s, messages: user, max_tokens: 1 })],
  "completion model": ["/v1/completions", (s) => ({ model: s, prompt: "hi", max_tokens: 1 })],
  "embeddings model": ["/v1/embeddings", (s) => ({ model: s, input: "hi" })],
  "responses model": ["/v1/responses", (s) => ({ model: s, input: "hi" })],
  "ollama generate model": ["/api/generate", (s) => ({ model: s, prompt: "hi", stream: false })],
  "ollama chat model": ["/api/chat", (s) => ({ model: s, messages: user, stream: false })],
  "ollama embed model": ["/api/embed", (s) => ({ model: s, input: "hi" })],
  "ollama show model": ["/api/show", (s) => ({ model: s })],
  "clear model": ["/v1/cache/clear", (s) => ({ model: s })],
  "warmup models": ["/v1/cache/warmup", (s) => ({ models: [s] })],
  stop: ["/v1/completions", (s) => ({ model: MODEL, prompt: "hi", max_tokens: 1, stop: s })],
  "ollama stop": ["/api/generate", (s) => ({ model: MODEL, prompt: "hi", stream: false, options: { stop: [s] } })],
  "tool name": [
    "/v1/chat/completions",
    (s) => ({ model: MODEL, messages: user, max_tokens: 1, tools: [{ type: "function", function: { name: s } }] }),
  ],
  "tool call id": [
    "/v1/chat/completions",
    (s) => ({ model: MODEL, messages: [...user, { role: "tool", content: "x", tool_call_id: s }], max_tokens: 1 }),
  ],
  user: ["/v1/completions", (s) => ({ model: MODEL, prompt: "hi", max_tokens: 1, user: s })],
  metadata: ["/v1/completions", (s) => ({ model: MODEL, prompt: "hi", max_tokens: 1, metadata: { k: s } })],
  keep_alive: ["/api/generate", (s) => ({ model: MODEL, prompt: "hi", stream: false, keep_alive: s })],
  "field name": ["/v1/completions", (s) => ({ model: MODEL, prompt: "hi", max_tokens: 1, [s]: 1 })],
};

function post(url: string, path: string, body: string): Promise<{ status: number; length: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        hostname,
        port,
        method: "POST",
        path,
        agent: false,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let length = 0;
        res.on("data", (c: Buffer) => (length += c.length));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, length }));
      },
    );
    // A server may answer a body over its limit before reading it, and close: that is an answer, not a failure.
    req.on("error", (error: NodeJS.ErrnoException) =>
      error.code === "EPIPE" || error.code === "ECONNRESET" ? resolve({ status: 413, length: 0 }) : reject(error),
    );
    req.end(body);
  });
}

/** Heap and external memory after a full garbage collection: what the process keeps. */
function retained(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

export const hostileInputScenario: Scenario<HostileInputParams> = {
  name: "hostile-input",
  title: "every client string from 1 KiB to 8 MiB: refused with a 4xx naming the limit, nothing of it kept",
  full: { sizes: [KIB, 16 * KIB, 256 * KIB, 2 * MIB, 8 * MIB], repeat: 2 },
  bounded: { sizes: [KIB, 64 * KIB, 2 * MIB], repeat: 1 },
  async run(params) {
    const tally = new Tally();
    await withTempDir("hostile", async (root) => {
      await withStressServer({ root, models: [MODEL] }, async (s) => {
        const logBytes = () => s.logs.reduce((sum, line) => sum + JSON.stringify(line).length, 0);
        const logBefore = logBytes();
        const retainedBefore = retained();
        const rssBefore = process.memoryUsage().rss;
        let sent = 0;
        tally.phase("requests");
        for (const size of params.sizes) {
          const text = "x".repeat(size);
          for (const [field, [path, build]] of Object.entries(FIELDS)) {
            const body = JSON.stringify(build(text));
            for (let i = 0; i < params.repeat; i++) {
              const answer = await post(s.url, path, body);
              sent += body.length;
              tally.count("requests");
              // Within every limit a string may be fine (a 1 KiB stop string generates); beyond them all, a 4xx.
              const refused = answer.status >= 400 && answer.status < 500;
              tally.check(
                answer.status < 500 && (size <= LARGEST_LIMIT || refused),
                () => `${field} of ${size} bytes on ${path}: ${answer.status}`,
              );
              tally.check(
                answer.length < 8 * KIB,
                () => `${field} of ${size} bytes on ${path}: an answer of ${answer.length} bytes`,
              );
              if (size > LARGEST_LIMIT && answer.status === 400) tally.count("refused_over_limit");
            }
          }
        }
        tally.phase("what was kept");
        const events = await fetch(`${s.url}/v1/cache/events`, { headers: { "last-event-id": "0" } });
        const reader = events.body?.getReader();
        let eventBytes = 0;
        // The backlog arrives at once; read what came within a moment, then leave.
        const deadline = performance.now() + 500;
        while (reader && performance.now() < deadline) {
          const next = await Promise.race([
            reader.read(),
            new Promise<null>((resolve) => setTimeout(() => resolve(null), 200)),
          ]);
          if (next === null || next.done) break;
          eventBytes += next.value.length;
        }
        await reader?.cancel().catch(() => {});
        const rssGrowth = process.memoryUsage().rss - rssBefore;
        const retainedGrowth = retained() - retainedBefore;
        const logGrowth = logBytes() - logBefore;
        tally.set("sent_mib", Math.round(sent / MIB));
        tally.set("rss_growth_mib", Math.round(rssGrowth / MIB));
        tally.set("event_backlog_kib", Math.round(eventBytes / KIB));
        tally.set("log_growth_kib", Math.round(logGrowth / KIB));
        tally.check(eventBytes < 4 * MIB, () => `the event backlog replayed ${Math.round(eventBytes / MIB)} MiB`);
        tally.check(logGrowth < 4 * MIB, () => `the log grew ${Math.round(logGrowth / MIB)} MiB`);
        tally.set("retained_growth_mib", Math.round(retainedGrowth / MIB));
        // What is kept (after a full collection), not the RSS, which keeps pages a parsed 8 MiB body used for a while.
        tally.check(retainedGrowth < 64 * MIB, () => `the server kept ${Math.round(retainedGrowth / MIB)} MiB more`);
        tally.phase(null);
      });
    });
    return tally.result();
  },
};
