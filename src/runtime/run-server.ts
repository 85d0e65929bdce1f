/**
 * `inferno serve` from start to exit: build the runtime (generating the demo model on a first run with an empty models
 * directory), listen, wait for SIGINT/SIGTERM, then shut down in order — in a fleet, drain the node's models to other
 * nodes —, stop accepting, finish in-flight requests (bounded), save the cache, unload the models, dispose the backends.
 */
import { mkdir, stat } from "node:fs/promises";
import type { Writable } from "node:stream";
import type { InfernoConfig } from "../config/schema.js";
import { physicalCores, threadCount } from "../backends/common.js";
import { createDemoModel } from "../models/demo.js";
import type { ModelDescriptor } from "../models/types.js";
import type { ModelManager } from "../models/manager.js";
import type { StoreEnvironment } from "../models/stores/index.js";
import { createLogger, type InfernoLogger, type LogLevel } from "./logger.js";
import { createRuntime, type Runtime } from "./runtime.js";
import { DEFAULT_SHUTDOWN_GRACE_MS, type RunningServer, startServer } from "./serve.js";

export interface RunServerOptions {
  version?: string;
  logLevel?: LogLevel;
  /** Logs and the load progress line. Default: process.stderr. */
  logDestination?: Writable & { isTTY?: boolean };
  /** Called once the socket listens, with the address and the number of discoverable models. */
  /** Called once listening, with the URL, the number of discoverable models and a chat model's name to try (if any). */
  onListening?: (url: string, modelCount: number, chatModel: string | null) => void;
  /** Signals that end the server. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
  /** How long in-flight requests may take to finish at shutdown, in ms. */
  shutdownGraceMs?: number;
  /** Where `model_stores` are looked for. Default: this process's variables and home. */
  environment?: StoreEnvironment;
  /**
   * Whether `models_dir` was set by a configuration source. Such a directory is never created: when it is missing (a
   * disk not mounted) the server runs without it. Default true; false only for the default (per-user) models
   * directory, which a first run creates.
   */
  modelsDirConfigured?: boolean;
}

/**
 * A first run with no model gets the demo model, so `npm start` and one `curl` show a completion — in the default
 * (per-user) models directory only, created for it. A configured models directory is never created nor written to: a
 * missing or empty one is usually a disk that is not mounted (or its bare mount point), and writing there would fill the mount point
 * and make the next start see a different directory. The server then runs without models from it, and their
 * statistics stay as they were (a directory that is absent changes nothing: see `cache.missing_retention_days`);
 * `inferno models demo` writes the demo model when asked. Returns the discoverable models.
 */
async function ensureAModel(
  config: InfernoConfig,
  models: ModelManager,
  logger: InfernoLogger,
  modelsDirConfigured: boolean,
): Promise<ModelDescriptor[]> {
  const found = await models.list();
  if (found.length > 0) return found;
  if (modelsDirConfigured) {
    const exists = await stat(config.models_dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    logger.warn(
      { models_dir: config.models_dir },
      exists
        ? `no model found in ${config.models_dir}; put .gguf or .onnx files there, or run \`inferno models demo\` for a tiny demo model`
        : `the models directory ${config.models_dir} does not exist (a disk not mounted?); serving without it and leaving it uncreated, the statistics of its models kept as they are`,
    );
    return found;
  }
  await mkdir(config.models_dir, { recursive: true });
  const demo = await createDemoModel(config.models_dir);
  logger.info(
    { models_dir: config.models_dir, model: demo.name, path: demo.path },
    `no model found in ${config.models_dir}: generated the demo model ${demo.name} (${demo.path}: a tiny random-weight llama that writes gibberish) so the server has something to serve; put your own .gguf or .onnx files there`,
  );
  return models.list();
}

/** The models whose header metadata reads (read once per file version; the cache keeps it for later). */
async function usable(models: ModelManager, found: ModelDescriptor[]): Promise<ModelDescriptor[]> {
  const read = await Promise.all(
    found.map((m) =>
      models.metadata(m).then(
        () => m,
        () => null,
      ),
    ),
  );
  return read.filter((m): m is ModelDescriptor => m !== null);
}

/** Resolves with the first of `signals` to arrive; `dispose()` stops listening (when the server never started). */
function signalWaiter(signals: NodeJS.Signals[]): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let handler: (signal: NodeJS.Signals) => void = () => undefined;
  const dispose = () => {
    for (const s of signals) process.off(s, handler);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    handler = (signal) => {
      dispose();
      resolve(signal);
    };
  });
  for (const s of signals) process.on(s, handler);
  return { received, dispose };
}

/** A second signal during shutdown means "now": exit without waiting (the state is saved on the next clean stop). */
function exitOnSecondSignal(signals: NodeJS.Signals[], logger: InfernoLogger): void {
  for (const s of signals) {
    process.once(s, () => {
      logger.warn({ signal: s }, "second signal: exiting without finishing the shutdown");
      process.exit(130);
    });
  }
}

/** Runs the server until a signal, then shuts it down in order. Resolves when everything is closed. */
export async function runServer(config: InfernoConfig, options: RunServerOptions = {}): Promise<void> {
  const destination = options.logDestination ?? process.stderr;
  const logger = createLogger({ level: options.logLevel ?? "info", destination });
  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  // Listening from the start: a Ctrl-C while models restore still ends in an orderly shutdown.
  const stop = signalWaiter(signals);
  let runtime: Runtime;
  try {
    runtime = await createRuntime(config, { logger, progress: destination, environment: options.environment });
  } catch (error) {
    stop.dispose();
    throw error;
  }
  let server: RunningServer | null = null;
  try {
    const discovered = await ensureAModel(config, runtime.models, logger, options.modelsDirConfigured ?? true);
    // The banner counts and suggests only models whose header reads: a broken file is listed by `models list`, not here.
    const found = await usable(runtime.models, discovered);
    if (found.length < discovered.length) {
      logger.warn(
        { invalid: discovered.length - found.length },
        `${discovered.length - found.length} model file(s) are invalid (see \`inferno models validate\`)`,
      );
    }
    const modelCount = found.length;
    server = await startServer(runtime, { version: options.version });
    await runtime.joinFleet(server.port, options.version);
    const threads = threadCount(config.backend.threads, physicalCores());
    logger.info(
      { url: server.url, models: modelCount, models_dir: config.models_dir, threads },
      `listening on ${server.url}; models run on ${threads} CPU thread(s) (backend.threads = ${config.backend.threads})`,
    );
    options.onListening?.(server.url, modelCount, found.find((m) => m.format === "gguf")?.name ?? null);
    const signal = await stop.received;
    logger.info({ signal }, `${signal}: shutting down`);
    exitOnSecondSignal(signals, logger);
    // In a fleet: the node's models go to other nodes first, while it still serves (a no-op alone).
    await runtime.drainFleet();
    await server.close(options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS);
  } finally {
    stop.dispose();
    await server?.close(0);
    await runtime.close();
    logger.info({}, "stopped");
  }
}
