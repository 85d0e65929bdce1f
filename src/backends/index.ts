/** The backends Inferno ships, by the format they load. */
import type { BackendConfig } from "../config/schema.js";
import { HostedBackend, type HostedBackendOptions } from "./hosted.js";
import { LlamaBackend } from "./llama.js";
import { OnnxBackend } from "./onnx.js";
import type { BackendRegistry } from "./types.js";

export { HostedBackend } from "./hosted.js";
export { LlamaBackend } from "./llama.js";
export { OnnxBackend } from "./onnx.js";

/** A registry that also owns its backends: disposing it releases their shared resources (the llama.cpp instance). */
export type Backends = BackendRegistry & AsyncDisposable;

/**
 * The real backends: GGUF on llama.cpp, ONNX on ONNX Runtime. Cheap to create: runtimes start in `ready()` (the
 * runtime calls it at creation) or on the first load of their format. With `backend.isolation = "process"` (the
 * default) GGUF models run in model hosts (see hosted.ts) and `ready()` starts the spare host; with `"in-process"` they
 * run in this process and `ready()` starts llama.cpp here. `spare: false` (default: `backend.spare_host`) keeps no
 * spare host (a one-shot command loads once); `entry` is the host entry module (the benchmarks give the compiled one). Dispose it (`await using`, or
 * `disposeBackends`) after every model is unloaded.
 */
export function createBackends(
  config?: BackendConfig,
  options: Pick<HostedBackendOptions, "spare" | "entry"> = {},
): Backends {
  const isolation = config?.isolation ?? "process";
  const timeout = config?.host_timeout_seconds;
  const hosted = {
    ...options,
    spare: options.spare ?? config?.spare_host ?? true,
    ...(timeout === undefined ? {} : { silenceMs: timeout * 1000 }),
  };
  const gguf = isolation === "process" ? new HostedBackend("gguf", hosted) : new LlamaBackend();
  const registry: BackendRegistry = { gguf, onnx: new OnnxBackend() };
  return Object.assign(registry, { [Symbol.asyncDispose]: () => disposeBackends(registry) });
}

/** Disposes every backend of a registry. Idempotent, as each backend's `dispose()` is. */
export async function disposeBackends(registry: BackendRegistry): Promise<void> {
  for (const backend of Object.values(registry)) await backend?.dispose();
}
