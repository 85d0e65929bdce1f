/**
 * `backend.parallel = 0` ("auto"): how many sequences a loaded GGUF model serves at once, from the machine's memory and
 * cores, as Ollama picks `OLLAMA_NUM_PARALLEL` (4 when memory allows, else 1).
 *
 * Several sequences of one model are decoded as one batch: llama.cpp reads the weights once per step for all of them, so
 * on a CPU the aggregate tokens/s of 4–8 concurrent clients rises well above one sequence's (measured in issue 25 on a
 * 2-core VM with a ~200 MB model: 1 sequence 0.73–0.80× node-llama-cpp serving the same clients on as many sequences,
 * 4 sequences 0.90–0.96×; `npm run bench -- --only concurrency`). The cost is memory: each sequence has its own KV cache of
 * `context_size` tokens, so 4 sequences hold 4× the context memory (counted in the pre-load estimate and in what the
 * cache accounts) — which is why a small machine gets fewer.
 */
import { availableParallelism, totalmem } from "node:os";
import { GIB } from "../units.js";

/** The machine the rule reads; parameters so the rule is tested as a table. */
export interface ParallelMachine {
  memoryBytes: number;
  cores: number;
}

/**
 * The sequences per loaded model: `configured` when it is above 0; else (auto) 4 with at least 8 GiB of memory and 2
 * cores, 2 with at least 4 GiB, else 1.
 */
export function parallelCount(
  configured: number,
  machine: ParallelMachine = { memoryBytes: totalmem(), cores: availableParallelism() },
): number {
  if (configured > 0) return configured;
  if (machine.memoryBytes >= 8 * GIB && machine.cores >= 2) return 4;
  if (machine.memoryBytes >= 4 * GIB) return 2;
  return 1;
}
