/**
 * Model presets (`[models."NAME"]`): which names they answer to, and the descriptor of a preset's model — its file's,
 * with the preset's name, load settings (a variant: see load-settings.ts) and defaults. Pure: the manager resolves the
 * file.
 */
import type { Preset } from "../config/schema.js";
import { fileKeyOf, type LoadSettings, variantSuffix } from "./load-settings.js";
import type { ModelDefaults, ModelDescriptor } from "./types.js";

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
