/**
 * Which source files one cold `POST /v1/chat/completions` passes through: a real server (the demo model, in-process
 * llama.cpp, a fresh cache) answers one chat request for a model that is not loaded, and V8's precise coverage (call
 * counts per function) tells which files under src/ ran code between the request's start and its answer. Start-up,
 * restore and warm-up are excluded: counters are reset just before the request.
 *
 *   npx tsx scripts/request-trace.ts            # the count and the files, in the order of their path
 *   npx tsx scripts/request-trace.ts --json     # { files: [...], count }
 *   npx tsx scripts/request-trace.ts --stream   # the same request with `stream: true`
 *
 * `--functions` lists, under each file, the functions that ran and how often (where to look for needless hops).
 *
 * `--isolation process` runs the model in a model host process (the default configuration); only this process's files
 * are counted then.
 */
import { Session } from "node:inspector/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const json = args.includes("--json");
const stream = args.includes("--stream");
const functions = args.includes("--functions");
const isolation = args.includes("--isolation") ? (args[args.indexOf("--isolation") + 1] ?? "process") : "in-process";

// Coverage before any of Inferno is loaded, so every function it compiles keeps a call count.
const inspector = new Session();
inspector.connect();
await inspector.post("Profiler.enable");
await inspector.post("Profiler.startPreciseCoverage", { callCount: true, detailed: false });

const { loadConfig } = await import("../src/config/index.js");
const { createDemoModel } = await import("../src/models/demo.js");
const { createRuntime, startServer } = await import("../src/runtime/index.js");

const dir = await mkdtemp(join(tmpdir(), "inferno-trace-"));
try {
  const modelsDir = join(dir, "models");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(modelsDir, { recursive: true });
  const demo = await createDemoModel(modelsDir);
  await writeFile(
    join(dir, ".inferno.toml"),
    [
      `models_dir = ${JSON.stringify(modelsDir)}`,
      "[cache]",
      `cache_dir = ${JSON.stringify(join(dir, "cache"))}`,
      "[server]",
      'host = "127.0.0.1"',
      "port = 0",
      "[backend]",
      "context_size = 512",
      "gpu = false",
      "threads = 1",
      `isolation = ${JSON.stringify(isolation)}`,
      "",
    ].join("\n"),
  );
  const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, "xdg-config"), XDG_CACHE_HOME: join(dir, "xdg-cache") };
  const config = await loadConfig({ env, cwd: dir });
  const runtime = await createRuntime(config, { environment: { env, home: dir } });
  const server = await startServer(runtime, { port: 0 });
  try {
    // Start-up over (restore, warm-up, the server's own warm-up requests): `/ready` answers 200.
    while ((await fetch(`${server.url}/ready`)).status !== 200) await delay(20);
    await delay(100);
    // Counters start from zero here: only what the request runs is counted.
    await inspector.post("Profiler.takePreciseCoverage");
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: demo.name,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
        temperature: 0,
        stream,
      }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`the request failed: ${response.status} ${text}`);
    const { result } = await inspector.post("Profiler.takePreciseCoverage");
    const ran = new Map<string, Map<string, number>>();
    for (const script of result) {
      if (!script.url.startsWith("file://")) continue;
      const path = relative(root, fileURLToPath(script.url));
      if (!path.startsWith("src/")) continue;
      for (const f of script.functions) {
        const count = f.ranges[0]?.count ?? 0;
        if (count === 0) continue;
        const calls = ran.get(path) ?? new Map<string, number>();
        const name = f.functionName || "(anonymous)";
        calls.set(name, (calls.get(name) ?? 0) + count);
        ran.set(path, calls);
      }
    }
    const unique = [...ran.keys()].sort();
    if (json) console.log(JSON.stringify({ count: unique.length, files: unique }, null, 2));
    else {
      for (const path of unique) {
        console.log(path);
        if (!functions) continue;
        for (const [name, count] of ran.get(path) ?? []) console.log(`  ${name} ×${count}`);
      }
      console.log(
        `${unique.length} files under src/ ran for one cold POST /v1/chat/completions${stream ? " (stream)" : ""}`,
      );
    }
  } finally {
    await server.close(1000);
    await runtime.close();
  }
} finally {
  await inspector.post("Profiler.stopPreciseCoverage");
  inspector.disconnect();
  await rm(dir, { recursive: true, force: true });
}
