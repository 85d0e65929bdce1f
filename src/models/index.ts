/** Model discovery, metadata and the tiny-model generator. */
export { createDemoModel, DEMO_MODEL_FILE, DEMO_MODEL_NAME, type DemoModel } from "./demo.js";
export {
  TINY_PRESETS,
  type TinyLlamaOptions,
  type TinyPreset,
  type TinyWeightType,
  tinyLlamaGguf,
  writeTinyLlamaGguf,
} from "./gguf-writer.js";
export {
  estimateGgufMemory,
  type HashOption,
  ModelManager,
  type ModelManagerOptions,
  ONNX_MEMORY_FACTOR,
  type ValidationResult,
} from "./manager.js";
export { GGUF_FIXED_OVERHEAD_BYTES, MODEL_HOST_OVERHEAD_BYTES } from "./overhead.js";
export type * from "./types.js";
