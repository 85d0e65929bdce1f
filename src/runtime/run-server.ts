/**
 * `inferno serve` from start to exit: build the runtime (generating the demo model on a first run with an empty models
 * directory), listen, wait for SIGINT/SIGTERM, then shut down in order — stop accepting, finish in-flight requests
 * (bounded), save the cache, unload the models, dispose the backends.
 */
import { mkdir } from "node:fs/promises";
import type { Writable } from "node:stream";
import type { InfernoConfig } from "../config/schema.js";
import { createDemoModel } from "../models/demo.js";
import type { ModelManager } from "../models/manager.js";
import { createLogger, type InfernoLogger, type LogLevel } from "./logger.js";
import { createRuntime } from "./runtime.js";
import { DEFAULT_SHUTDOWN_GRACE_MS, startServer } from "./serve.js";

export interface RunServerOptions {
  version?: string;
  logLevel?: LogLevel;
  /** Logs and the load progress line. Default: process.stderr. */
  logDestination?: Writable & { isTTY?: boolean };
  /** Called once the socket listens, with the address and the number of discoverable models. */
  onListening?: (url: string, modelCount: number) => void;
  /** Signals that end the server. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
  /** How long in-flight requests may take to finish at shutdown, in ms. */
  shutdownGraceMs?: number;
}

/**
 * A first run with no model gets the demo model, so `npm start` and one `curl` show a completion. Returns how many
 * models are discoverable.
 */
async function ensureAModel(config: InfernoConfig, models: ModelManager, logger: InfernoLogger): Promise<number> {
  const found = await models.list();
  if (found.length > 0) return found.length;
  await mkdir(config.models_dir, { recursive: true });
  const demo = await createDemoModel(config.models_dir);
  logger.info(
    { models_dir: config.models_dir, model: demo.name, path: demo.path },
    `no model found in ${config.models_dir}: generated the demo model ${demo.name} (${demo.path}: a tiny random-weight llama that writes gibberish) so the server has something to serve; put your own .gguf or .onnx files there`,
  );
  return (await models.list()).length;
}

function waitForSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      for (const s of signals) process.off(s, handler);
      resolve(signal);
    };
    for (const s of signals) process.on(s, handler);
  });
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
  const stop = waitForSignal(signals);
  const runtime = await createRuntime(config, { logger, progress: destination });
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  try {
    const modelCount = await ensureAModel(config, runtime.models, logger);
    server = await startServer(runtime, { version: options.version });
    logger.info({ url: server.url, models: modelCount, models_dir: config.models_dir }, `listening on ${server.url}`);
    options.onListening?.(server.url, modelCount);
    const signal = await stop;
    logger.info({ signal }, `${signal}: shutting down`);
    exitOnSecondSignal(signals, logger);
    const report = await server.close(options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS);
    if (!report.drained) logger.warn({ aborted: report.aborted }, "aborted requests that did not finish in time");
  } finally {
    await server?.close(0);
    await runtime.close();
    logger.info({}, "stopped");
  }
}
