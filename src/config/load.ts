/**
 * Layered configuration loading. Sources, lowest to highest precedence:
 *
 *   built-in defaults < global file ($XDG_CONFIG_HOME/inferno/config.toml) < ~/.inferno.toml < ./.inferno.toml
 *   < --config FILE < INFERNO_<SECTION>__<KEY> environment variables < command-line flags
 *
 * Each source is validated on its own, so an error names the file or variable that holds the bad value; the merged
 * result is validated again for rules that span keys. Every value remembers where it came from (`origins`).
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigInvalid } from "../errors/index.js";
import { allKeys, childNames, closestMatches, findKey, formatKey, isRecordPath } from "./keys.js";
import {
  type ConfigFileRef,
  configFiles,
  currentEnvironment,
  defaultCacheDir,
  defaultModelsDir,
  type Environment,
  expandPath,
  PathExpansionError,
} from "./paths.js";
import { configSchema, type InfernoConfig, PATH_KEYS } from "./schema.js";
import { isTable, type Tree } from "./tree.js";
import { checkValue, describeFound, parseValue } from "./values.js";

export type SourceKind = "default" | "global" | "user" | "local" | "file" | "env" | "flag";

/** Where a value came from: the kind of source and the file path, variable name or flag that set it. */
export interface Origin {
  kind: SourceKind;
  source: string;
}

/** A value set on the command line, by its config key. */
export interface FlagValue {
  key: string;
  value: unknown;
  /** The flag as typed, for messages and `show --origin` (e.g. `--port`). */
  flag: string;
}

export interface LoadConfigOptions extends Partial<Environment> {
  /** `--config FILE`: must exist. */
  configFile?: string;
  /** Values from command-line flags (highest precedence). */
  flags?: FlagValue[];
  /**
   * Text to use instead of the file at that absolute path, as if it were written there: how `config set` validates the
   * whole configuration a change would produce before it writes anything.
   */
  fileTexts?: ReadonlyMap<string, string>;
}

export interface ResolvedConfig {
  config: InfernoConfig;
  /** Origin of every leaf key, by its formatted key (`cache.max_cached_models`, `cache.models."a.gguf".pinned`). */
  origins: Map<string, Origin>;
  /** The files consulted, in precedence order, and whether each exists. */
  files: ConfigFileRef[];
  environment: Environment;
}

interface Layer {
  origin: Origin;
  values: Tree;
  /** Relative paths in this layer resolve against this directory. */
  baseDir: string;
}

interface Problem {
  key: string;
  message: string;
}

function describeOrigin(origin: Origin): string {
  switch (origin.kind) {
    case "env":
      return `environment variable ${origin.source}`;
    case "flag":
      return `flag ${origin.source}`;
    case "default":
      return "built-in defaults";
    default:
      return origin.source;
  }
}

function invalid(origin: Origin, problems: Problem[]): ConfigInvalid {
  const list = problems.map((p) => `${p.key}: ${p.message}`).join("; ");
  return new ConfigInvalid(`Invalid configuration in ${describeOrigin(origin)}: ${list}`, {
    details: { source: origin.source, kind: origin.kind, problems },
  });
}

function unknownKeyMessage(path: string[]): string {
  const parent = path.slice(0, -1);
  const name = path[path.length - 1] as string;
  const siblings = childNames(parent);
  const suggestions = closestMatches(name, siblings, 1);
  const hint = suggestions.length > 0 ? `; did you mean ${formatKey([...parent, suggestions[0] as string])}?` : "";
  return `unknown key${hint}`;
}

/** Checks every key of a layer against the schema, collecting each problem with its key. */
function checkTree(values: Tree, path: string[], problems: Problem[]): void {
  for (const [name, value] of Object.entries(values)) {
    const childPath = [...path, name];
    const key = formatKey(childPath);
    const recordParent = isRecordPath(path);
    const isSection = recordParent || childNames(childPath).length > 0 || isRecordPath(childPath);
    if (isSection) {
      if (!isTable(value)) {
        problems.push({ key, message: `expected a table of settings, found ${describeFound(value)}` });
      } else {
        checkTree(value, childPath, problems);
      }
      continue;
    }
    const info = findKey(childPath);
    if (!info) {
      problems.push({ key, message: unknownKeyMessage(childPath) });
      continue;
    }
    const expected = checkValue(info, value);
    if (expected) problems.push({ key, message: `expected ${expected}, found ${describeFound(value)}` });
  }
}

/** Expands `~`, `$VAR` and relative paths in the layer's path keys (a path, or a list of paths), in place. */
function expandLayerPaths(layer: Layer, environment: Environment, problems: Problem[]): void {
  for (const key of PATH_KEYS) {
    const path = key.split(".");
    const parent = path.slice(0, -1).reduce<unknown>((node, s) => (isTable(node) ? node[s] : undefined), layer.values);
    const name = path[path.length - 1] as string;
    if (!isTable(parent)) continue;
    const value = parent[name];
    try {
      if (typeof value === "string") parent[name] = expandPath(value, environment, layer.baseDir);
      else if (Array.isArray(value)) parent[name] = value.map((v: string) => expandPath(v, environment, layer.baseDir));
    } catch (error) {
      if (!(error instanceof PathExpansionError)) throw error;
      problems.push({ key, message: error.message });
    }
  }
}

/**
 * How `models_dir` and `models_dirs` combine (the one home of this rule): the directories are `models_dir` followed by
 * `models_dirs`, duplicates dropped. When no source sets `models_dir` but `models_dirs` is given, the list's first entry
 * becomes `models_dir` (so the default directory is not searched behind the user's back), with that entry's origin.
 */
function combineModelsDirs(modelsDir: string, modelsDirs: readonly string[], origins: Map<string, Origin>) {
  const listOrigin = origins.get("models_dirs");
  const first = origins.has("models_dir") || modelsDirs.length === 0 ? modelsDir : (modelsDirs[0] as string);
  if (!origins.has("models_dir") && listOrigin && modelsDirs.length > 0) origins.set("models_dir", listOrigin);
  return { models_dir: first, models_dirs: [...new Set([first, ...modelsDirs])] };
}

function validateLayer(layer: Layer, environment: Environment): Layer {
  const problems: Problem[] = [];
  checkTree(layer.values, [], problems);
  if (problems.length === 0) expandLayerPaths(layer, environment, problems);
  if (problems.length > 0) throw invalid(layer.origin, problems);
  return layer;
}

async function readLayerFile(
  kind: ConfigFileRef["kind"],
  path: string,
  required: boolean,
  replacement: string | undefined,
): Promise<Layer | null> {
  let text: string;
  try {
    text = replacement ?? (await readFile(path, "utf8"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !required) return null;
    const reason =
      code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory" : (error as Error).message;
    throw new ConfigInvalid(`Cannot read configuration file ${path}: ${reason}`, {
      cause: error,
      details: { source: path },
    });
  }
  let values: Tree;
  try {
    values = parseToml(text) as Tree;
  } catch (error) {
    const where = error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : "";
    const reason = (error as Error).message.split("\n")[0];
    throw new ConfigInvalid(`Configuration file ${path} is not valid TOML${where}: ${reason}`, {
      cause: error,
      details: { source: path },
    });
  }
  return { origin: { kind, source: path }, values, baseDir: dirname(path) };
}

/** Builds the layer of `INFERNO_<SECTION>__<KEY>` variables. `INFERNO_MODELS_DIR` sets the top-level `models_dir`. */
function environmentLayer(environment: Environment): Layer[] {
  const layers: Layer[] = [];
  for (const [name, text] of Object.entries(environment.env).sort(([a], [b]) => a.localeCompare(b))) {
    if (!name.startsWith("INFERNO_") || text === undefined) continue;
    const path = name
      .slice("INFERNO_".length)
      .split("__")
      .map((s) => s.toLowerCase());
    const origin: Origin = { kind: "env", source: name };
    const info = findKey(path);
    if (!info) {
      const suggestion = closestMatches(name, listEnvNames(), 1)[0];
      throw invalid(origin, [
        {
          key: formatKey(path),
          message: `not a configuration key${suggestion ? `; did you mean ${suggestion}?` : ""}`,
        },
      ]);
    }
    const parsed = parseValue(info, text);
    if (!parsed.ok) {
      throw invalid(origin, [{ key: info.key, message: `expected ${parsed.expected}, found ${describeFound(text)}` }]);
    }
    const values: Tree = {};
    setIn(values, path, parsed.value);
    layers.push(validateLayer({ origin, values, baseDir: environment.cwd }, environment));
  }
  return layers;
}

/** The environment variable for each fixed key (`INFERNO_CACHE__MAX_CACHED_MODELS`). */
export function envNameOf(path: readonly string[]): string {
  return `INFERNO_${path.map((s) => s.toUpperCase()).join("__")}`;
}

function listEnvNames(): string[] {
  return allKeyPaths().map(envNameOf);
}

function allKeyPaths(): string[][] {
  return allKeys()
    .filter((k) => !k.path.includes("<name>"))
    .map((k) => k.path);
}

function flagLayers(flags: FlagValue[], environment: Environment): Layer[] {
  return flags.map(({ key, value, flag }) => {
    const values: Tree = {};
    setIn(values, key.split("."), value);
    return validateLayer({ origin: { kind: "flag", source: flag }, values, baseDir: environment.cwd }, environment);
  });
}

export function setIn(tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree;
  for (const segment of path.slice(0, -1)) {
    if (!isTable(node[segment])) node[segment] = {};
    node = node[segment] as Tree;
  }
  node[path[path.length - 1] as string] = value;
}

/** Deep-merges `source` into `target`, recording the origin of every leaf it sets. Lists replace, never concatenate. */
function mergeInto(target: Tree, source: Tree, origin: Origin, origins: Map<string, Origin>, path: string[]): void {
  for (const [name, value] of Object.entries(source)) {
    const childPath = [...path, name];
    if (isTable(value)) {
      if (!isTable(target[name])) target[name] = {};
      mergeInto(target[name] as Tree, value, origin, origins, childPath);
    } else {
      target[name] = value;
      origins.set(formatKey(childPath), origin);
    }
  }
}

/** Loads the layered configuration with the origin of every value. */
export async function resolveConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const environment = currentEnvironment(options);
  const files = configFiles(environment, options.configFile);
  const layers: Layer[] = [];
  for (const file of files) {
    const layer = await readLayerFile(file.kind, file.path, file.kind === "file", options.fileTexts?.get(file.path));
    file.exists = layer !== null;
    if (layer) layers.push(validateLayer(layer, environment));
  }
  layers.push(...environmentLayer(environment), ...flagLayers(options.flags ?? [], environment));

  const merged: Tree = {};
  const origins = new Map<string, Origin>();
  for (const layer of layers) mergeInto(merged, layer.values, layer.origin, origins, []);

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = formatKey((issue?.path ?? []).map(String));
    const origin = origins.get(key) ?? { kind: "default", source: "built-in" };
    throw invalid(origin, [{ key, message: issue?.message ?? "invalid" }]);
  }
  const parsed = result.data;
  const defaultOrigin: Origin = { kind: "default", source: "built-in" };
  const modelsDir = parsed.models_dir ?? defaultModelsDir(environment);
  const config: InfernoConfig = {
    ...parsed,
    ...combineModelsDirs(modelsDir, parsed.models_dirs, origins),
    cache: { ...parsed.cache, cache_dir: parsed.cache.cache_dir ?? defaultCacheDir(environment) },
  };
  for (const key of allKeyPaths()) {
    const formatted = formatKey(key);
    if (!origins.has(formatted)) origins.set(formatted, defaultOrigin);
  }
  return { config, origins, files, environment };
}

/** Loads the layered configuration (see the module comment for the order of sources). */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<InfernoConfig> {
  return (await resolveConfig(options)).config;
}
