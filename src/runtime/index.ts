/** The runtime: what the CLI and the library use to run Inferno (composition, server, live-server client). */
export { InfernoClient, type InfernoClientOptions, serverUrl } from "./client.js";
export { createLogger, type InfernoLogger, type LoggerOptions, type LogLevel, silentLogger } from "./logger.js";
export { ModelCache } from "./model-cache.js";
export { type RunServerOptions, runServer } from "./run-server.js";
export { createRuntime, Runtime, type RuntimeOptions } from "./runtime.js";
export {
  DEFAULT_SHUTDOWN_GRACE_MS,
  isLoopback,
  type RunningServer,
  type ShutdownReport,
  startServer,
  type StartServerOptions,
} from "./serve.js";
export type * from "./types.js";
