/**
 * A real Inferno for the stress scenarios: tiny generated llama GGUF models in a directory, the configuration loaded as
 * the CLI loads it (defaults, then the given keys as flags), the real runtime (llama.cpp in process, one thread, the file
 * state store) and the HTTP server on a free loopback port. Log lines are kept, parsed, for the scenarios to count.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { loadConfig } from "../src/config/index.js";
import { allKeys } from "../src/config/keys.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { createLogger, createRuntime, type Runtime, type RunningServer, startServer } from "../src/runtime/index.js";

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface StressServer {
  url: string;
  runtime: Runtime;
  server: RunningServer;
  modelsDir: string;
  cacheDir: string;
  /** Every line logged so far (pino levels: 40 = warn, 50 = error). */
  logs: LogLine[];
  /** The configuration's environment, for CLI processes that must read the same files. */
  env: Record<string, string>;
  /** POSTs JSON (with the API key when one is configured); the status and the parsed (or raw) body. */
  post(path: string, body: unknown): Promise<{ status: number; body: unknown }>;
  getJson<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

export interface StressServerOptions {
  /** Root directory: models go to `<root>/models`, the home to `<root>/home`. */
  root: string;
  /** Model file names to generate (nano tiny llama models, different seeds). */
  models: string[];
  /** Cache directory (default `<root>/cache`). */
  cacheDir?: string;
  /** Configuration keys (dotted) and values over the stress defaults. */
  settings?: Record<string, unknown>;
}

/** Tiny, CPU only, one thread, in process: what every scenario's server shares unless it says otherwise. */
const DEFAULTS: Record<string, unknown> = {
  "backend.context_size": 256,
  "backend.batch_size": 128,
  "backend.gpu": false,
  "backend.threads": 1,
  "backend.isolation": "in-process",
  "cache.enable_warmup": false,
  "cache.persist_interval_seconds": 0,
};

export async function writeModels(dir: string, names: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  let seed = 1;
  for (const name of names) await writeTinyLlamaGguf(join(dir, name), { preset: "nano", seed: seed++ });
}

export async function startStressServer(options: StressServerOptions): Promise<StressServer> {
  const modelsDir = join(options.root, "models");
  const home = join(options.root, "home");
  const cacheDir = options.cacheDir ?? join(options.root, "cache");
  await mkdir(home, { recursive: true });
  await writeModels(modelsDir, options.models);
  const settings: Record<string, unknown> = {
    ...DEFAULTS,
    models_dir: modelsDir,
    "cache.cache_dir": cacheDir,
    ...options.settings,
  };
  const known = new Set(allKeys().map((k) => k.key));
  const flags = Object.entries(settings).map(([key, value]) => {
    if (!known.has(key)) throw new Error(`no configuration key ${key}`);
    return { key, value, flag: `--${key}` };
  });
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_CACHE_HOME: join(home, ".cache"),
    PATH: process.env.PATH ?? "",
  };
  const config = await loadConfig({ env, cwd: home, flags });
  const logs: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim() !== "") logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const runtime = await createRuntime(config, { logger: createLogger({ destination, level: "info", pretty: false }) });
  const server = await startServer(runtime, { port: 0 });
  const apiKey = config.server.api_key;
  const headers = { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };
  let stopped: Promise<void> | null = null;
  return {
    url: server.url,
    runtime,
    server,
    modelsDir,
    cacheDir,
    logs,
    env,
    async post(path, body) {
      const response = await fetch(`${server.url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: kept as text.
      }
      return { status: response.status, body: parsed };
    },
    async getJson<T>(path: string) {
      const response = await fetch(`${server.url}${path}`, { headers });
      return (await response.json()) as T;
    },
    stop() {
      stopped ??= server.close(2000).then(() => runtime.close());
      return stopped;
    },
  };
}

/** Runs `fn` with a started server, which is stopped afterwards whatever happens. */
export async function withStressServer<T>(
  options: StressServerOptions,
  fn: (server: StressServer) => Promise<T>,
): Promise<T> {
  const server = await startStressServer(options);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** A one-token greedy completion of `model` (cheap on the tiny models). */
export function completion(model: string): Record<string, unknown> {
  return { model, prompt: "Once upon a time", max_tokens: 1, temperature: 0 };
}
