/**
 * A real Inferno server for tests: generated GGUF models in a temp directory, a configuration written as a local
 * `.inferno.toml` in a temp working directory (HOME and XDG dirs point inside it too), the real runtime (llama.cpp,
 * file state store) and the HTTP server on a free loopback port.
 *
 *   const s = await startTestServer(t, { models: { gguf: { "a.gguf": {} } }, toml: "[cache]\nmax_cached_models = 1" });
 *   const client = s.openai();   // the official openai client pointed at it
 *
 * `s.env` / `s.cwd` are what the CLI must be given (in-process `main(argv, io)` or a spawned process) to read the same
 * configuration.
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestContext } from "node:test";
import OpenAI from "openai";
import { stringify as stringifyToml } from "smol-toml";
import { createBackends } from "../src/backends/index.js";
import { loadConfig } from "../src/config/index.js";
import type { InfernoConfig } from "../src/config/schema.js";
import {
  createRuntime,
  type InfernoLogger,
  type Runtime,
  type RunningServer,
  startServer,
  type StartServerOptions,
} from "../src/runtime/index.js";
import { hostBundle } from "./host-bundle.js";
import { type TinyModelsOptions, tinyModelsDir } from "./models.js";
import { tempDir } from "./tmp.js";

type Section = Record<string, unknown>;

/** Settings for the test configuration file, by section (merged over the test defaults). */
export interface TestConfig {
  cache?: Section;
  server?: Section;
  backend?: Section;
  /** Stores to read; they are looked for under the test's HOME (`<cwd>/.ollama/models`, …). */
  model_stores?: string[];
  /** Model presets (`[models."NAME"]`). */
  models?: Record<string, Section>;
}

export interface TestSetupOptions {
  /** Models to generate (default: one nano `tiny.gguf`). */
  models?: TinyModelsOptions;
  config?: TestConfig;
}

export interface TestSetup {
  /** Working directory holding `.inferno.toml`; also HOME. */
  cwd: string;
  env: Record<string, string>;
  modelsDir: string;
  cacheDir: string;
  config: InfernoConfig;
}

/** Writes the models and the configuration (as the local `.inferno.toml`), and loads it as the CLI would. */
export async function testSetup(t: TestContext, options: TestSetupOptions = {}): Promise<TestSetup> {
  const cwd = await tempDir(t, "inferno-serve-");
  const { dir: modelsDir } = await tinyModelsDir(t, options.models);
  const cacheDir = join(cwd, "cache");
  const file = {
    models_dir: modelsDir,
    ...(options.config?.model_stores ? { model_stores: options.config.model_stores } : {}),
    ...(options.config?.models ? { models: options.config.models } : {}),
    cache: { cache_dir: cacheDir, ...options.config?.cache },
    server: { host: "127.0.0.1", port: 0, ...options.config?.server },
    // CPU only, a small context and one thread: the tiny models need nothing more, and with test files running two at
    // a time on 2 cores, llama.cpp's spin-waiting threads are far slower than one (see TEST_BACKEND in models.ts).
    // In process unless a test asks for model hosts (test/server/isolation.test.ts): each host is a process start.
    backend: {
      context_size: 512,
      batch_size: 128,
      gpu: false,
      threads: 1,
      isolation: "in-process",
      ...options.config?.backend,
    },
  };
  await writeFile(join(cwd, ".inferno.toml"), stringifyToml(file));
  const env = {
    HOME: cwd,
    XDG_CONFIG_HOME: join(cwd, "xdg-config"),
    XDG_CACHE_HOME: join(cwd, "xdg-cache"),
    PATH: process.env.PATH ?? "",
  };
  const config = await loadConfig({ env, cwd });
  return { cwd, env, modelsDir, cacheDir, config };
}

export interface TestServer extends TestSetup {
  runtime: Runtime;
  server: RunningServer;
  url: string;
  /** The official OpenAI client for this server (`apiKey` defaults to a placeholder: the server ignores it when none is configured). */
  openai(apiKey?: string): OpenAI;
  /** GET a path and parse JSON. */
  getJson<T = unknown>(path: string, init?: RequestInit): Promise<{ status: number; body: T; headers: Headers }>;
  /** Stops the server and closes the runtime (saves the state). Also run when the test ends. */
  stop(): Promise<void>;
}

export interface TestServerOptions extends TestSetupOptions {
  server?: StartServerOptions;
  /**
   * With `backend.isolation = "process"`: the model hosts' entry. Default `"bundled"`, which starts each host without
   * tsx (host-bundle.ts); `"source"` runs the TypeScript entry under tsx, as a server run from source does.
   */
  hostEntry?: "bundled" | "source";
  /** Serve the models, configuration and cache directory of an earlier server (a restart) instead of new ones. */
  setup?: TestSetup;
  /** The runtime's logger (default: none), to read what the server logs. */
  logger?: InfernoLogger;
}

export async function startTestServer(t: TestContext, options: TestServerOptions = {}): Promise<TestServer> {
  const setup = options.setup ?? (await testSetup(t, options));
  const bundled = setup.config.backend.isolation === "process" && options.hostEntry !== "source";
  const backends = bundled ? createBackends(setup.config.backend, { entry: await hostBundle() }) : undefined;
  const runtime = await createRuntime(setup.config, {
    environment: { env: setup.env, home: setup.cwd },
    ...(backends ? { backends } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const server = await startServer(runtime, { port: 0, ...options.server });
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= server.close(1000).then(() => runtime.close());
    return stopped;
  };
  // The temporary directory's own removal was registered first and runs first: the final save on stop would create its
  // cache directory again (a leftover `inferno-serve-*` per test), so it is removed once more after the stop.
  t.after(async () => {
    await stop();
    await rm(setup.cwd, { recursive: true, force: true });
  });
  return {
    ...setup,
    runtime,
    server,
    url: server.url,
    openai: (apiKey = "not-needed") => new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 }),
    async getJson<T>(path: string, init?: RequestInit) {
      const response = await fetch(`${server.url}${path}`, init);
      const body = (await response.json()) as T;
      return { status: response.status, body, headers: response.headers };
    },
    stop,
  };
}

/**
 * A stand-in TestContext for file-level `before`/`after` hooks, so one server can serve every test of a file:
 * `cleanUp()` runs what the helpers registered with `after`, last first.
 */
export function fileContext(): { context: TestContext; cleanUp(): Promise<void> } {
  const cleanups: Array<() => unknown> = [];
  const context = { after: (fn: () => unknown) => void cleanups.push(fn) } as unknown as TestContext;
  return {
    context,
    async cleanUp() {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}

/** Polls until `check` holds. Tests wait for an order of events, never for a time: the test runner's timeout bounds it. */
export async function waitFor(check: () => Promise<boolean> | boolean, pollMs = 20): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, pollMs));
}

/** The `/metrics` text of a server. */
export async function scrapeMetrics(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/** The value of an unlabelled or labelled Prometheus sample (`name` with its labels as written, in order). */
export function metricSample(metrics: string, name: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no sample ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}
