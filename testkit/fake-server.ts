/**
 * The real HTTP server and the real ModelCache on the fake backend and an in-memory model source: for tests about the
 * server and the cache's events rather than the runtimes (loads take `loadMs` of real time, nothing touches llama.cpp).
 *
 *   const s = await startFakeServer(t, { models: ["a.gguf", "b.gguf"], behaviours: { "b.gguf": { loadMs: 500 } } });
 */
import type { TestContext } from "node:test";
import { FakeBackend, type FakeModelBehaviour } from "../src/backends/fake.js";
import { ModelCache } from "../src/cache/model-cache.js";
import { configSchema, type InfernoConfig } from "../src/config/schema.js";
import { adviseOn } from "../src/runtime/advice.js";
import { type RunningServer, startServer, type StartServerOptions } from "../src/runtime/index.js";
import type { Logger, ModelCatalog, ServerRuntime } from "../src/server/ports.js";
import { MemoryStateStore } from "./cache-harness.js";
import { FakeModelSource, type FakeModelSpec } from "./fake-models.js";

export interface FakeServerOptions {
  models?: Array<FakeModelSpec | string>;
  behaviours?: Record<string, FakeModelBehaviour>;
  /** Configuration sections (parsed by the real schema). */
  config?: { cache?: Record<string, unknown>; server?: Record<string, unknown> };
  server?: StartServerOptions;
}

export interface FakeServer {
  url: string;
  cache: ModelCache;
  source: FakeModelSource;
  backend: FakeBackend;
  store: MemoryStateStore;
  server: RunningServer;
  config: InfernoConfig;
  warnings: string[];
  stop(): Promise<void>;
}

export async function startFakeServer(t: TestContext, options: FakeServerOptions = {}): Promise<FakeServer> {
  const parsed = configSchema.parse({
    models_dir: "/models",
    cache: { enable_warmup: false, ...options.config?.cache },
    server: { host: "127.0.0.1", port: 0, ...options.config?.server },
  });
  const config: InfernoConfig = {
    ...parsed,
    models_dir: "/models",
    cache: { ...parsed.cache, cache_dir: "/nonexistent" },
  };
  const source = new FakeModelSource(options.models ?? ["a.gguf", "b.gguf"]);
  const backend = new FakeBackend({ models: options.behaviours ?? {} });
  const store = new MemoryStateStore();
  const warnings: string[] = [];
  const cache = await ModelCache.create(config.cache, config.backend, source, { backends: { gguf: backend }, store });
  const models: ModelCatalog = {
    list: () => source.list(),
    resolve: (name) => source.resolve(name),
    metadata: () => Promise.reject(new Error("the fake model source has no metadata")),
    shortNames: async () => new Map((await source.list()).map((m) => [m.name, m.name])),
  };
  const logger: Logger = {
    info: () => {},
    debug: () => {},
    warn: (_fields, message) => warnings.push(message),
    error: (_fields, message) => warnings.push(message),
  };
  const runtime: ServerRuntime = {
    config,
    models,
    cache,
    logger,
    advise: () => adviseOn({ state: cache.snapshot(), config: config.cache }),
  };
  const server = await startServer(runtime, { port: 0, host: "127.0.0.1", ...options.server });
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= server.close(500).then(() => cache.close());
    return stopped;
  };
  t.after(stop);
  return { url: server.url, cache, source, backend, store, server, config, warnings, stop };
}
