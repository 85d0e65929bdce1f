/**
 * Load settings of one model variant: what a preset (`[models."NAME"]`), an Ollama Modelfile or a request (`num_ctx`,
 * `num_thread`, `num_gpu`) changes about how a file is loaded. A file loaded with other settings is another cache entry:
 * its key is the file's key plus a suffix that spells the settings (`/m/tiny.gguf#ctx=4096`), and so is its name
 * (`tiny#ctx=4096`), which resolves back to the same variant — so the cache, its statistics and the state file need no
 * notion of variants. Presets, which set load settings of their own, live here too (last section). Pure: no I/O.
 */
import { availableParallelism, totalmem } from "node:os";
import type { BackendConfig, Preset } from "../config/schema.js";
import type { Bytes, ModelDefaults, ModelDescriptor } from "./types.js";
import { GIB } from "../units.js";

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

// ---------------------------------------------------------------------------------------------------------------------
// Presets
//
// Model presets (`[models."NAME"]`): which names they answer to, and the descriptor of a preset's model — its file's,
// with the preset's name, load settings (a variant: see above) and defaults. Pure: the manager resolves the
// file.

const LATEST = ":latest";

/** The preset a name means: its NAME or an alias, each also with `:latest`; undefined when none. */
export function presetNamed(
  presets: Readonly<Record<string, Preset>>,
  name: string,
): { name: string; preset: Preset } | undefined {
  const bare = name.endsWith(LATEST) ? name.slice(0, -LATEST.length) : name;
  for (const candidate of name === bare ? [name] : [name, bare]) {
    const own = presets[candidate];
    if (own) return { name: candidate, preset: own };
    const aliased = Object.entries(presets).find(([, p]) => p.aliases.includes(candidate));
    if (aliased) return { name: aliased[0], preset: aliased[1] };
  }
  return undefined;
}

/** The preset's load settings (the ones it sets). */
export function presetLoad(preset: Preset): LoadSettings {
  const load: LoadSettings = {};
  if (preset.context_size !== undefined) load.context_size = preset.context_size;
  if (preset.parallel !== undefined) load.parallel = preset.parallel;
  if (preset.threads !== undefined) load.threads = preset.threads;
  if (preset.gpu_layers !== undefined) load.gpu_layers = preset.gpu_layers;
  return load;
}

/** The preset's defaults, in the backend's names. */
export function presetDefaults(preset: Preset): ModelDefaults {
  const pairs: Array<[keyof ModelDefaults, unknown]> = [
    ["system", preset.system],
    ["template", preset.template],
    ["temperature", preset.temperature],
    ["topP", preset.top_p],
    ["topK", preset.top_k],
    ["minP", preset.min_p],
    ["repeatPenalty", preset.repeat_penalty],
    ["presencePenalty", preset.presence_penalty],
    ["frequencyPenalty", preset.frequency_penalty],
    ["stop", preset.stop],
  ];
  return Object.fromEntries(pairs.filter(([, v]) => v !== undefined)) as ModelDefaults;
}

/**
 * The model a preset runs: `file`'s descriptor named after the preset, loading with its settings over the file's own
 * (a store model's Modelfile), with its defaults over the file's. The key names the preset, so two presets of one file
 * are two cache entries.
 */
export function presetDescriptor(file: ModelDescriptor, name: string, preset: Preset): ModelDescriptor {
  const load = { ...file.load, ...presetLoad(preset) };
  const defaults = { ...file.defaults, ...presetDefaults(preset) };
  return {
    ...file,
    name,
    key: `${fileKeyOf(file.key)}${variantSuffix({ preset: name, ...load })}`,
    ...(Object.keys(load).length > 0 ? { load } : {}),
    ...(Object.keys(defaults).length > 0 ? { defaults } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Sequences per loaded model

/**
 * `backend.parallel = 0` ("auto", the default): how many sequences a loaded GGUF model serves at once, decided per model
 * load as Ollama decides `OLLAMA_NUM_PARALLEL` (it tries 4 and falls back to 1 when that does not fit).
 *
 * Several sequences of one model are decoded as one batch: llama.cpp reads the weights once per step for all of them, so
 * on a CPU the aggregate tokens/s of 4–8 concurrent clients rises well above one sequence's (measured in issue 25 on a
 * 2-core VM with a ~200 MB model: 1 sequence 0.73–0.80× node-llama-cpp serving the same clients on as many sequences,
 * 4 sequences 0.90–0.96×; `npm run bench -- --only concurrency`). The cost is memory: each sequence has its own KV cache
 * of `context_size` tokens, so 4 sequences hold 4× the context memory (counted in the pre-load estimate and in what the
 * cache accounts). Without grouped-query attention that is a lot — Phi-3-mini (32 layers, 32 KV heads × 96) at 2048
 * tokens holds 768 MiB per sequence — so a machine rule alone would refuse models that fit with one sequence.
 */
/** The machine the rule reads; parameters so the rule is tested as a table. */
export interface ParallelMachine {
  memoryBytes: number;
  cores: number;
}

/**
 * The machine rule, auto's upper bound: `configured` when it is above 0; else 4 with at least 8 GiB of memory and 2
 * cores, 2 with at least 4 GiB, else 1. A model load takes fewer when they do not fit (`sequencesFor`); the server's
 * admission slots count this bound.
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

/** A GGUF model's expected memory split by sequences: the bytes it takes at any count, and each sequence's KV cache. */
export interface SequenceCost {
  fixedBytes: Bytes;
  perSequenceBytes: Bytes;
}

/** The sequences one model load gets (`sequencesFor`), and how they were decided. */
export interface Sequences {
  count: number;
  /** Whether `backend.parallel` was 0 (auto): `count` is then at most `most`, fewer when memory allowed no more. */
  auto: boolean;
  /** Auto's upper bound (the machine rule, `parallelCount`); the configured count otherwise. */
  most: number;
}

/**
 * The sequences one load of a GGUF model gets — the one rule the pre-load estimate, the load and the loaded model's
 * info follow: a configured count (`configured > 0`) as it is; auto (0) the machine rule's number (`parallelCount`)
 * when the model's estimate with that many fits `roomBytes` (the cache's memory limit less what pinned models hold;
 * Infinity without a limit), else the most below it that fit, down to 1 (which may still not fit: the cache then
 * refuses the model with ModelTooLarge).
 */
export function sequencesFor(
  configured: number,
  cost: SequenceCost,
  roomBytes: Bytes = Infinity,
  machine?: ParallelMachine,
): Sequences {
  if (configured > 0) return { count: configured, auto: false, most: configured };
  const most = parallelCount(0, machine);
  let count = most;
  while (count > 1 && cost.fixedBytes + count * cost.perSequenceBytes > roomBytes) count--;
  return { count, auto: true, most };
}
