/**
 * Load settings of one model variant: what a preset (`[models."NAME"]`), an Ollama Modelfile or a request (`num_ctx`,
 * `num_thread`, `num_gpu`) changes about how a file is loaded. A file loaded with other settings is another cache entry:
 * its key is the file's key plus a suffix that spells the settings (`/m/tiny.gguf#ctx=4096`), and so is its name
 * (`tiny#ctx=4096`), which resolves back to the same variant — so the cache, its statistics and the state file need no
 * notion of variants. Pure: no I/O.
 */
import type { BackendConfig } from "../config/schema.js";

export interface LoadSettings {
  /** Context window in tokens (`backend.context_size`). */
  context_size?: number;
  /** CPU threads (`backend.threads`; 0 = auto). */
  threads?: number;
  /** Layers offloaded to the GPU (`backend.gpu_layers`). */
  gpu_layers?: number;
  /** Concurrent sequences (`backend.parallel`). */
  parallel?: number;
}

/** What a variant's key spells: its load settings and, for a preset, the preset's name (its defaults differ). */
export interface VariantParts extends LoadSettings {
  preset?: string;
}

/** The short spelling of each setting in a variant suffix, in the order they are written. */
const SPELLING: ReadonlyArray<[keyof LoadSettings, string]> = [
  ["context_size", "ctx"],
  ["threads", "threads"],
  ["gpu_layers", "gpu_layers"],
  ["parallel", "parallel"],
];

/**
 * A variant suffix: `#` and `key=value` pairs joined by commas (a preset's name first, then numbers). Keys and files
 * never end so otherwise.
 */
const PAIR = "(?:preset=[^,#]+|(?:ctx|threads|gpu_layers|parallel)=\\d+)";
const SUFFIX = new RegExp(`#(${PAIR}(?:,${PAIR})*)$`);

/** The settings that differ from `backend`'s (the rest load as the configuration says, so they name no variant). */
export function differing(settings: LoadSettings, backend: BackendConfig): LoadSettings {
  const out: LoadSettings = {};
  for (const [key] of SPELLING) {
    const value = settings[key];
    if (value !== undefined && value !== backend[key]) out[key] = value;
  }
  return out;
}

/** `#ctx=4096,threads=2` (`#preset=NAME,ctx=4096` for a preset) for these settings; "" when there are none. */
export function variantSuffix(settings: VariantParts | undefined): string {
  if (!settings) return "";
  const pairs = SPELLING.filter(([key]) => settings[key] !== undefined).map(
    ([key, short]) => `${short}=${settings[key]}`,
  );
  if (settings.preset !== undefined) pairs.unshift(`preset=${settings.preset}`);
  return pairs.length === 0 ? "" : `#${pairs.join(",")}`;
}

/** Splits a name or key into its base and the settings its suffix spells (none when it has no suffix). */
export function parseVariant(name: string): { base: string; settings: VariantParts } {
  const match = SUFFIX.exec(name);
  if (!match) return { base: name, settings: {} };
  const settings: VariantParts = {};
  for (const pair of (match[1] as string).split(",")) {
    const at = pair.indexOf("=");
    const [short, value] = [pair.slice(0, at), pair.slice(at + 1)];
    if (short === "preset") {
      settings.preset = value;
      continue;
    }
    const key = SPELLING.find(([, s]) => s === short)?.[0] as keyof LoadSettings;
    settings[key] = Number(value);
  }
  return { base: name.slice(0, match.index), settings };
}

/** The file key of a variant's key (the key without its suffix). */
export function fileKeyOf(key: string): string {
  return parseVariant(key).base;
}

/** The backend configuration a model with these settings loads with. */
export function withLoadSettings(backend: BackendConfig, settings: LoadSettings | undefined): BackendConfig {
  if (!settings) return backend;
  const merged = { ...backend };
  for (const [key] of SPELLING) if (settings[key] !== undefined) (merged[key] as number) = settings[key] as number;
  return merged;
}
