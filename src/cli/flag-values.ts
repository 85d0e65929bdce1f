/**
 * The configuration values given on the command line by the flags of `flags.ts`, parsed against the schema: imported
 * by the commands' actions only (the schema is what `--help` must not load).
 */
import { type FlagValue, findKey, parseValue } from "../config/index.js";
import { UsageError } from "../errors/index.js";
import { configFlag, type ConfigFlagName } from "./flags.js";

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The configuration values given by the named flags in parsed options, typed by their keys. */
export function configFlagValues(options: Record<string, unknown>, names: readonly ConfigFlagName[]): FlagValue[] {
  const values: FlagValue[] = [];
  for (const name of names) {
    const raw = options[camel(name)];
    if (raw === undefined) continue;
    const { flag, key } = configFlag(name);
    const info = findKey(key.split("."));
    if (!info) continue;
    const parsed = parseValue(info, String(raw));
    if (!parsed.ok) throw new UsageError(`--${flag} expects ${parsed.expected}, found ${JSON.stringify(raw)}`);
    values.push({ key, value: parsed.value, flag: `--${flag}` });
  }
  return values;
}
