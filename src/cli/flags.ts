/**
 * Command-line flags that set configuration keys, as one table typed against the configuration: a flag cannot name a
 * key that does not exist, and its help text is the key's schema description.
 */
import { type Command, Option } from "commander";
import { type FlagValue, findKey, parseValue, type SchemaConfig } from "../config/index.js";
import { UsageError } from "../errors/index.js";

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

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function entry(name: ConfigFlagName): ConfigFlag {
  return CONFIG_FLAGS.find((f) => f.flag === name) as ConfigFlag;
}

/** Adds the named configuration flags to a command, with help from the schema. */
export function addConfigFlags(command: Command, names: readonly ConfigFlagName[]): Command {
  for (const name of names) {
    const { flag, key, argument } = entry(name);
    const info = findKey(key.split("."));
    command.addOption(new Option(`--${flag} ${argument}`, `${info?.description ?? key} (config: ${key})`));
  }
  return command;
}

/** The configuration values given by the named flags in parsed options, typed by their keys. */
export function configFlagValues(options: Record<string, unknown>, names: readonly ConfigFlagName[]): FlagValue[] {
  const values: FlagValue[] = [];
  for (const name of names) {
    const raw = options[camel(name)];
    if (raw === undefined) continue;
    const { flag, key } = entry(name);
    const info = findKey(key.split("."));
    if (!info) continue;
    const parsed = parseValue(info, String(raw));
    if (!parsed.ok) throw new UsageError(`--${flag} expects ${parsed.expected}, found ${JSON.stringify(raw)}`);
    values.push({ key, value: parsed.value, flag: `--${flag}` });
  }
  return values;
}
