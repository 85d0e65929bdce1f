/**
 * Command-line flags that set configuration keys, as one table typed against the configuration: a flag cannot name a
 * key that does not exist, and its help text is the key's schema description. Help is built from the key table
 * generated from the schema (`KEY_REFERENCE`), so `--help` never imports zod; the values are parsed against the schema
 * itself, when a command runs (`flag-values.ts`).
 */
import { type Command, Option } from "commander";
import { KEY_REFERENCE } from "../config/reference.generated.js";
import type { SchemaConfig } from "../config/schema.js";

type Leaves<T, Prefix extends string = ""> = {
  [K in keyof T & string]: NonNullable<T[K]> extends Record<string, unknown>
    ? NonNullable<T[K]> extends unknown[]
      ? `${Prefix}${K}`
      : string extends keyof NonNullable<T[K]>
        ? never
        : Leaves<NonNullable<T[K]>, `${Prefix}${K}.`>
    : `${Prefix}${K}`;
}[keyof T & string];

/** Every dotted leaf key of the configuration (`server.port`, `cache.max_cached_models`, …). */
export type ConfigKey = Leaves<SchemaConfig>;

export interface ConfigFlag {
  /** Long flag name without dashes, e.g. `port`. */
  flag: string;
  key: ConfigKey;
  /** Placeholder shown in help, e.g. `<port>`. */
  argument: string;
}

/** The flags that map to configuration keys. Commands pick the ones they accept by flag name. */
export const CONFIG_FLAGS = [
  { flag: "host", key: "server.host", argument: "<host>" },
  { flag: "port", key: "server.port", argument: "<port>" },
  { flag: "models-dir", key: "models_dir", argument: "<dir>" },
  { flag: "cache-dir", key: "cache.cache_dir", argument: "<dir>" },
  { flag: "threads", key: "backend.threads", argument: "<n>" },
  { flag: "context-size", key: "backend.context_size", argument: "<tokens>" },
  { flag: "gpu", key: "backend.gpu", argument: "<backend>" },
  { flag: "batch-size", key: "backend.batch_size", argument: "<tokens>" },
  { flag: "parallel", key: "backend.parallel", argument: "<n>" },
  { flag: "mmap", key: "backend.mmap", argument: "<bool>" },
  { flag: "max-cached-models", key: "cache.max_cached_models", argument: "<n>" },
  { flag: "api-key", key: "server.api_key", argument: "<key>" },
] as const satisfies readonly ConfigFlag[];

export type ConfigFlagName = (typeof CONFIG_FLAGS)[number]["flag"];

/** The flags of `[backend]`: every command that runs a model (`run`, `serve`) takes all of them. */
export const BACKEND_FLAGS = CONFIG_FLAGS.filter((f) => f.key.startsWith("backend.")).map((f) => f.flag);

/**
 * The configuration flags each command accepts: read by its command tree (commands/) for help and by its action
 * (actions/) for the values, so the two cannot disagree.
 */
export const COMMAND_FLAGS = {
  /** Server and cache flags, and every backend flag `run` takes. */
  serve: ["host", "port", "models-dir", "cache-dir", "max-cached-models", "api-key", ...BACKEND_FLAGS],
  run: ["models-dir", ...BACKEND_FLAGS, "api-key"],
  models: ["models-dir"],
  cache: ["cache-dir", "models-dir"],
  /** `config get` and `config show` take every flag, to show what a command given those flags would see. */
  config: CONFIG_FLAGS.map((f) => f.flag),
} as const satisfies Record<string, readonly ConfigFlagName[]>;

/** The flag's entry in `CONFIG_FLAGS`. */
/** What a MODEL argument takes (`run`, `models info`): every name the one resolver does (docs/models.md, Names). */
export const MODEL_ARGUMENT_HELP =
  "model name: a file name or stem, a path in the models directory, a store tag (`phi3:mini`), a preset or an alias";

export function configFlag(name: ConfigFlagName): ConfigFlag {
  return CONFIG_FLAGS.find((f) => f.flag === name) as ConfigFlag;
}

/** The description and choices of a key, from the table generated from the schema. */
export function keyReference(key: ConfigKey): { description: string; choices?: readonly string[] } {
  return KEY_REFERENCE[key];
}

/** Adds the named configuration flags to a command, with help from the schema. */
export function addConfigFlags(command: Command, names: readonly ConfigFlagName[]): Command {
  for (const name of names) {
    const { flag, key, argument } = configFlag(name);
    command.addOption(new Option(`--${flag} ${argument}`, `${keyReference(key).description} (config: ${key})`));
  }
  return command;
}
