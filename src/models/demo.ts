/**
 * The demo model `inferno models demo` writes (and the server offers on a first run with an empty models directory):
 * a tiny random-weight llama, so a new user can see Inferno load, generate and stream without downloading anything.
 * Its text is gibberish — the weights are random — but everything around it is real.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Bytes } from "./types.js";

/** The demo model's name (its file stem) and file name. */
export const DEMO_MODEL_NAME = "inferno-demo";
export const DEMO_MODEL_FILE = `${DEMO_MODEL_NAME}.gguf`;

const DEMO_OPTIONS = { preset: "small", type: "q8_0", seed: 1, name: "Inferno demo (random weights)" } as const;

export interface DemoModel {
  /** Absolute path of the demo file. */
  path: string;
  /** The name to pass to `inferno run --model`. */
  name: string;
  size: Bytes;
  /** False when an identical demo file was already there. */
  created: boolean;
}

/** Writes the demo model into `dir` (created if needed). Idempotent: an existing, complete demo file is kept. */
export async function createDemoModel(dir: string): Promise<DemoModel> {
  // The writer is imported when a demo is written: `inferno --help` names the demo model and must stay cheap.
  const { tinyLlamaGguf, writeModelFile } = await import("./gguf-writer.js");
  const path = join(dir, DEMO_MODEL_FILE);
  const bytes = tinyLlamaGguf(DEMO_OPTIONS);
  const existing = await stat(path).catch(() => null);
  if (existing?.isFile() && existing.size === bytes.length) {
    return { path, name: DEMO_MODEL_NAME, size: existing.size, created: false };
  }
  await writeModelFile(path, bytes);
  return { path, name: DEMO_MODEL_NAME, size: bytes.length, created: true };
}
