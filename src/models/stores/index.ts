/**
 * The model stores of other tools Inferno reads (`model_stores`): where each lives and how it is scanned. Every store
 * produces the same `Scan` a models directory does, so names, keys, statistics, pins and warm-up work on store models
 * exactly as on files in a models directory; store roots count as allowed roots for path safety.
 */
import { join } from "node:path";
import type { StoreName } from "../../config/schema.js";
import type { Scan } from "../discovery.js";
import { scanHuggingFace } from "./huggingface.js";
import { scanLmStudio } from "./lmstudio.js";
import { scanOllama } from "./ollama.js";

/** One place a store keeps models. */
export interface StoreLocation {
  store: StoreName;
  /** Absolute path of the store's models folder (it need not exist). */
  root: string;
}

/** What store locations depend on: environment variables and the home directory. */
export interface StoreEnvironment {
  env: Record<string, string | undefined>;
  home: string;
}

/**
 * Where each store keeps its models, the way its own tool finds them: Ollama `$OLLAMA_MODELS` or `~/.ollama/models`;
 * LM Studio `~/.lmstudio/models`, then the older `~/.cache/lm-studio/models`; Hugging Face `$HF_HUB_CACHE`, else
 * `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
 */
export function storeLocations(stores: readonly StoreName[], { env, home }: StoreEnvironment): StoreLocation[] {
  const nonEmpty = (value: string | undefined) => (value !== undefined && value !== "" ? value : undefined);
  const where: Record<StoreName, string[]> = {
    ollama: [nonEmpty(env.OLLAMA_MODELS) ?? join(home, ".ollama", "models")],
    lmstudio: [join(home, ".lmstudio", "models"), join(home, ".cache", "lm-studio", "models")],
    huggingface: [
      nonEmpty(env.HF_HUB_CACHE) ??
        (nonEmpty(env.HF_HOME) ? join(env.HF_HOME as string, "hub") : undefined) ??
        join(nonEmpty(env.XDG_CACHE_HOME) ?? join(home, ".cache"), "huggingface", "hub"),
    ],
  };
  return stores.flatMap((store) => where[store].map((root) => ({ store, root })));
}

/** Scans one store location. */
export function scanStore(location: StoreLocation): Promise<Scan> {
  switch (location.store) {
    case "ollama":
      return scanOllama(location.root);
    case "lmstudio":
      return scanLmStudio(location.root);
    case "huggingface":
      return scanHuggingFace(location.root);
  }
}

export type { StoreName };
