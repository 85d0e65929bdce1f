/**
 * What `inferno config` does (its command tree is in ../commands/config.ts): read the layered configuration (`get`,
 * `show`, `validate`) and change the local or global file (`set`, `unset`, `init`) without disturbing anything else in
 * it. `path` is in config-path.ts: it needs no schema.
 */
import {
  checkValue,
  childNames,
  createConfigFile,
  currentEnvironment,
  defaultCacheDir,
  defaultModelsDir,
  type Environment,
  findKey,
  formatKey,
  foundText,
  globalConfigPath,
  isRecordPath,
  type KeyInfo,
  localConfigPath,
  type Origin,
  parseKey,
  parseValue,
  readConfigText,
  redactConfig,
  renderToml,
  type ResolvedConfig,
  setInToml,
  starterConfig,
  suggestKeys,
  tomlValue,
  unsetInToml,
  writeConfigText,
} from "../../config/index.js";
import { ConfigInvalid, UsageError } from "../../errors/index.js";
import type { CliContext } from "../context.js";
import { configFlagValues } from "../flag-values.js";
import { COMMAND_FLAGS } from "../flags.js";

const ALL_FLAGS = COMMAND_FLAGS.config;

export interface TargetOptions {
  /** Act on the global file (`$XDG_CONFIG_HOME/inferno/config.toml`) instead of `./.inferno.toml`. */
  global?: boolean;
}

/** The file `set`, `unset` and `init` act on. */
function targetFile(ctx: CliContext, options: TargetOptions): string {
  const environment = environmentOf(ctx);
  return options.global ? globalConfigPath(environment) : localConfigPath(environment);
}

function environmentOf(ctx: CliContext): Environment {
  return currentEnvironment({ env: ctx.io.env, cwd: ctx.io.cwd });
}

/** How an origin reads in `show --origin` and in messages. */
function describeOrigin(origin: Origin): string {
  switch (origin.kind) {
    case "default":
      return "default";
    case "global":
      return `global file ${origin.source}`;
    case "user":
      return `user file ${origin.source}`;
    case "local":
      return `local file ${origin.source}`;
    case "file":
      return `--config file ${origin.source}`;
    case "env":
      return `env ${origin.source}`;
    case "flag":
      return `flag ${origin.source}`;
  }
}

function parseKeyArgument(text: string): string[] {
  try {
    const path = parseKey(text);
    if (path.some((s) => s === "")) throw new SyntaxError(`empty segment in key ${text}`);
    return path;
  } catch (error) {
    throw new UsageError(`Cannot read the key ${JSON.stringify(text)}: ${(error as Error).message}`, { cause: error });
  }
}

function unknownKey(path: string[], ctx: CliContext): UsageError {
  const suggestions = suggestKeys(path, 1);
  const hint =
    suggestions.length > 0 ? `; did you mean ${suggestions[0]}?` : `; \`${ctx.command("config show")}\` lists the keys`;
  return new UsageError(`Unknown configuration key ${formatKey(path)}${hint}`, {
    details: { key: formatKey(path), suggestions },
  });
}

/** The settable key named on the command line, or a usage error with a "did you mean". */
function leafKey(text: string, ctx: CliContext): KeyInfo {
  const path = parseKeyArgument(text);
  const info = findKey(path);
  if (info) return info;
  const children = childNames(path);
  if (children.length > 0 || isRecordPath(path) || isRecordEntry(path)) {
    const example = children[0] ? `, e.g. ${formatKey([...path, children[0]])}` : "";
    throw new UsageError(`${formatKey(path)} is a table, not a single setting: name one of its keys${example}`);
  }
  throw unknownKey(path, ctx);
}

/** A record entry such as `cache.models."a.gguf"`: a whole table `unset` may remove. */
function isRecordEntry(path: string[]): boolean {
  return path.length > 0 && isRecordPath(path.slice(0, -1));
}

/** `text` parsed as the key's type and checked against its schema, or a configuration error saying what was expected. */
function valueFor(info: KeyInfo, text: string): unknown {
  const parsed = parseValue(info, text);
  const problem = parsed.ok ? checkValue(info, parsed.value) : parsed.expected;
  if (parsed.ok && problem === undefined) return parsed.value;
  throw new ConfigInvalid(`Invalid value for ${info.key}: expected ${problem}, found ${foundText(parsed, text)}`, {
    details: { key: info.key, found: text },
  });
}

function getIn(tree: unknown, path: readonly string[]): unknown {
  let node = tree;
  for (const segment of path) {
    if (typeof node !== "object" || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

/**
 * Validates the whole configuration as it would be with `text` in `file` (every layer, cross-key rules included), so a
 * change that would leave Inferno unable to start is refused before anything is written.
 */
function resolveWith(ctx: CliContext, file: string, text: string): Promise<ResolvedConfig> {
  return ctx.resolveConfig([], new Map([[file, text]]));
}

/** After a change to `file`, says so when a higher-precedence source still decides the key's value. */
function noteOverride(ctx: CliContext, resolved: ResolvedConfig, key: string, file: string): void {
  const origin = resolved.origins.get(key);
  if (origin && origin.kind !== "default" && origin.source !== file) {
    const value = getIn(resolved.config, parseKey(key));
    ctx.out.warn(`${key} is ${tomlValue(value)} in effect: ${describeOrigin(origin)} takes precedence over ${file}`);
  }
}

export async function getCommand(ctx: CliContext, keyText: string, options: Record<string, unknown>): Promise<void> {
  const path = parseKeyArgument(keyText);
  const { config } = await ctx.resolveConfig(configFlagValues(options, ALL_FLAGS));
  let value = getIn(config, path);
  const known = findKey(path) !== undefined || value !== undefined || isRecordEntry(path);
  if (!known) throw unknownKey(path, ctx);
  // A whole section prints its secrets masked, as `config show` does; a key named alone prints as it is.
  if (typeof value === "object" && value !== null && !Array.isArray(value)) value = getIn(redactConfig(config), path);
  if (ctx.out.json) {
    ctx.out.printJson(value ?? null);
  } else if (value === undefined) {
    ctx.out.info(`${formatKey(path)} is not set`);
  } else if (typeof value === "object" && !Array.isArray(value)) {
    ctx.out.write(renderToml(value as Record<string, unknown>, undefined, path));
  } else {
    // Strings print bare so `$(inferno config get models_dir)` is the path itself.
    ctx.out.print(typeof value === "string" ? value : tomlValue(value));
  }
}

/** Where a local file's settings apply: Inferno reads `./.inferno.toml` from the working directory only. */
function scopeNote(ctx: CliContext, file: string): string {
  if (file !== localConfigPath(environmentOf(ctx))) return "";
  return ` (the local file: it applies when Inferno runs in ${ctx.io.cwd}; --global sets it for every directory)`;
}

export async function setCommand(
  ctx: CliContext,
  keyText: string,
  valueText: string,
  options: TargetOptions,
): Promise<void> {
  const info = leafKey(keyText, ctx);
  const value = valueFor(info, valueText);
  const file = targetFile(ctx, options);
  const before = await readConfigText(file);
  const after = setInToml(before, info.path, value, file);
  const resolved = await resolveWith(ctx, file, after);
  if (after !== before) await writeConfigText(file, after);
  ctx.out.info(`Set ${info.key} = ${tomlValue(value)} in ${file}${options.global ? "" : scopeNote(ctx, file)}`);
  noteOverride(ctx, resolved, info.key, file);
}

export async function unsetCommand(ctx: CliContext, keyText: string, options: TargetOptions): Promise<void> {
  const path = parseKeyArgument(keyText);
  if (!findKey(path) && !isRecordEntry(path)) throw unknownKey(path, ctx);
  const key = formatKey(path);
  const file = targetFile(ctx, options);
  const after = unsetInToml(await readConfigText(file), path, file);
  if (after === undefined) {
    // Unsetting is idempotent: the key is already absent, which is what was asked for.
    ctx.out.info(`${key} is not set in ${file}; nothing to remove`);
    return;
  }
  const resolved = await resolveWith(ctx, file, after);
  await writeConfigText(file, after);
  ctx.out.info(`Removed ${key} from ${file}`);
  if (findKey(path)) noteOverride(ctx, resolved, key, file);
}

export async function showCommand(
  ctx: CliContext,
  options: { origin?: boolean } & Record<string, unknown>,
): Promise<void> {
  const resolved = await ctx.resolveConfig(configFlagValues(options, ALL_FLAGS));
  // Secrets masked (`server.api_key`, `fleet.secret`, the Redis password): `config get <key>` prints one as it is.
  const config = redactConfig(resolved.config);
  const { origins } = resolved;
  if (ctx.out.json) {
    ctx.out.printJson(options.origin ? { config, origins: Object.fromEntries(origins) } : config);
    return;
  }
  const note = options.origin
    ? (path: string[]) => {
        const origin = origins.get(formatKey(path));
        return origin ? describeOrigin(origin) : undefined;
      }
    : undefined;
  ctx.out.write(renderToml(config as unknown as Record<string, unknown>, note));
}

export async function initCommand(ctx: CliContext, options: TargetOptions): Promise<void> {
  const file = targetFile(ctx, options);
  const environment = environmentOf(ctx);
  const created = await createConfigFile(
    file,
    starterConfig({ models_dir: defaultModelsDir(environment), "cache.cache_dir": defaultCacheDir(environment) }),
  );
  if (!created) {
    throw new UsageError(
      `${file} already exists; not overwriting it (edit it, or use \`${ctx.command("config set KEY VALUE")}\`)`,
      {
        details: { file },
      },
    );
  }
  ctx.out.info(`Created ${file}: every setting is listed, commented out, with its default`);
}

export async function validateCommand(ctx: CliContext): Promise<void> {
  const { files, origins } = await ctx.resolveConfig();
  const read = files.filter((f) => f.exists);
  const variables = [...new Set([...origins.values()].filter((o) => o.kind === "env").map((o) => o.source))];
  if (ctx.out.json) {
    ctx.out.printJson({ ok: true, files: read.map((f) => ({ kind: f.kind, path: f.path })), environment: variables });
    return;
  }
  ctx.out.print("OK");
  for (const f of read) ctx.out.print(`  ${f.kind} file ${f.path}`);
  for (const name of variables) ctx.out.print(`  env ${name}`);
  if (read.length === 0 && variables.length === 0) ctx.out.print("  (no configuration files; built-in defaults)");
}
