/**
 * Where configuration files live, the platform cache directory, and `~`/`$VAR` expansion in path values. Imports no
 * schema: `inferno config path` answers from here alone.
 */
import { stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface Environment {
  /** Environment variables (defaults to `process.env`). */
  env: Record<string, string | undefined>;
  /** The home directory `~` expands to. */
  home: string;
  /** The directory relative paths and `./.inferno.toml` are taken from. */
  cwd: string;
  platform: NodeJS.Platform;
}

export function currentEnvironment(overrides: Partial<Environment> = {}): Environment {
  const env = overrides.env ?? process.env;
  return {
    env,
    home: overrides.home ?? env.HOME ?? homedir(),
    cwd: overrides.cwd ?? process.cwd(),
    platform: overrides.platform ?? process.platform,
  };
}

/** The "global" configuration file: `$XDG_CONFIG_HOME/inferno/config.toml` (`~/.config/inferno/config.toml`). */
export function globalConfigPath(environment: Environment): string {
  const { env, home, platform } = environment;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "inferno", "config.toml");
  if (platform === "win32" && env.APPDATA) return join(env.APPDATA, "inferno", "config.toml");
  return join(home, ".config", "inferno", "config.toml");
}

/** `~/.inferno.toml`. */
export function userConfigPath(environment: Environment): string {
  return join(environment.home, ".inferno.toml");
}

/** `./.inferno.toml` in the working directory (the "local" file). */
export function localConfigPath(environment: Environment): string {
  return join(environment.cwd, ".inferno.toml");
}

/** The default `cache.cache_dir`: the platform's cache directory + `inferno`. */
export function defaultCacheDir(environment: Environment): string {
  const { env, home, platform } = environment;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "inferno");
  if (platform === "darwin") return join(home, "Library", "Caches", "inferno");
  if (platform === "win32" && env.LOCALAPPDATA) return join(env.LOCALAPPDATA, "inferno", "cache");
  return join(home, ".cache", "inferno");
}

/**
 * The default models directory, per user like Ollama's: the platform's data directory + `inferno/models`
 * (`$XDG_DATA_HOME/inferno/models`, `~/.local/share/inferno/models` on Linux). Created only by a first run that puts
 * the demo model there; a configured directory is never created.
 */
export function defaultModelsDir(environment: Environment): string {
  const { env, home, platform } = environment;
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, "inferno", "models");
  if (platform === "darwin") return join(home, "Library", "Application Support", "inferno", "models");
  if (platform === "win32" && env.LOCALAPPDATA) return join(env.LOCALAPPDATA, "inferno", "models");
  return join(home, ".local", "share", "inferno", "models");
}

export class PathExpansionError extends Error {}

/**
 * Expands a leading `~` (or `~/`) to the home directory and `$VAR` / `${VAR}` to environment variables, then resolves
 * a relative result against `base`. An unset variable is an error rather than an empty string, so a typo cannot turn
 * `$MODELS/llama` into `/llama`.
 */
export function expandPath(value: string, environment: Environment, base: string): string {
  let out = value;
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) out = environment.home + out.slice(1);
  out = out.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_, braced?: string, bare?: string) => {
      const name = (braced ?? bare) as string;
      const found = environment.env[name];
      if (found === undefined) throw new PathExpansionError(`environment variable $${name} is not set`);
      return found;
    },
  );
  return resolve(base, out);
}

export interface ConfigFileRef {
  kind: "global" | "user" | "local" | "file";
  path: string;
  exists: boolean;
}

/** The configuration files consulted, lowest precedence first (`exists` is filled in by whoever reads them). */
export function configFiles(environment: Environment, configFile?: string): ConfigFileRef[] {
  const files: ConfigFileRef[] = [
    { kind: "global", path: globalConfigPath(environment), exists: false },
    { kind: "user", path: userConfigPath(environment), exists: false },
    { kind: "local", path: localConfigPath(environment), exists: false },
  ];
  if (configFile !== undefined) {
    files.push({ kind: "file", path: expandPath(configFile, environment, environment.cwd), exists: false });
  }
  return files;
}

/** Whether a configuration file exists at `file` (without reading or parsing it, so it works on broken files too). */
export async function configFileExists(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
}
