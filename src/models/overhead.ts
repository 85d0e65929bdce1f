/**
 * Memory a GGUF model costs beyond its tensors, KV cache and compute buffers: the one home of these terms, read by the
 * pre-load estimate (`estimateGgufMemory`) and by the in-process llama backend's accounted figure.
 */
import type { Bytes } from "./types.js";
import { MIB } from "../units.js";

/**
 * What a loaded GGUF model adds to a process where llama.cpp already runs, beyond its weights, KV cache and compute
 * buffers (llama.cpp's and node-llama-cpp's bookkeeping, the first request's scratch): per model, in either isolation
 * mode (in the estimate; and added to node-llama-cpp's own figure, which leaves it out, for a model loaded in process).
 * Measured on the generated medium models after a first request that fills the context, CPU only: 3.4–7.9 MiB
 * of anonymous memory (`npm run bench -- --only isolation`, the in-process rows). The once-per-process costs — Node,
 * llama.cpp's start — are not in it: a model loaded in process finds them paid, a hosted one pays them in its host
 * (`MODEL_HOST_OVERHEAD_BYTES`).
 */
export const GGUF_FIXED_OVERHEAD_BYTES: Bytes = 5 * MIB;
/**
 * Memory of a model host before its model (`backend.isolation = "process"`): Node, llama.cpp started and the spare's
 * warm-up leftovers, as the Pss the cache accounts for a hosted model includes them — once per hosted model, never
 * for a model loaded in process. Measured on x86-64 Linux, Node 20, CPU only, hosts from dist: an idle host's Pss
 * 101–103 MiB on a quiet machine, as a user's server runs (`npm run bench -- --only isolation`), down to 88 MiB while
 * many other processes map the same llama.cpp libraries (Pss splits shared pages among them); a host run from source
 * under tsx takes ~35 MiB more.
 */
export const MODEL_HOST_OVERHEAD_BYTES: Bytes = 100 * MIB;
