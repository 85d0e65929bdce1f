/** The public library API of Inferno. */
export * from "./errors/index.js";
export {
  type BackendConfig,
  type CacheConfig,
  type InfernoConfig,
  loadConfig,
  type LoadConfigOptions,
  type ResolvedConfig,
  resolveConfig,
  type ServerConfig,
} from "./config/index.js";
export type * from "./models/types.js";
export type * from "./backends/types.js";
export type * from "./cache/types.js";
export {
  createDemoModel,
  ModelManager,
  type ModelManagerOptions,
  type ValidationResult,
  writeTinyLlamaGguf,
} from "./models/index.js";
export { type Backends, createBackends, disposeBackends } from "./backends/index.js";
export { ModelCache, type ModelCacheOptions } from "./runtime/model-cache.js";
export type { CacheDependencies, CacheLogger } from "./cache/model-cache.js";
export { FileStateStore } from "./cache/persistence/file-store.js";
export type { StateStore } from "./cache/persistence/types.js";
export { createApp, type AppOptions, type InfernoApp } from "./server/app.js";
export {
  createRuntime,
  InfernoClient,
  Runtime,
  type RuntimeOptions,
  type RunningServer,
  startServer,
  type StartServerOptions,
} from "./runtime/index.js";
