/**
 * Every configuration key (read from the schema through `allKeys()`, the table `config set`, the environment and the
 * generated reference use: no hand list), given values of the wrong type and values just outside its range — through
 * `config set` (which must exit 2 and leave the file byte for byte), through a configuration file and through an
 * environment variable (which `config validate` must refuse with exit 2).
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { stringify as stringifyToml } from "smol-toml";
import { z } from "zod";
import { main } from "../../src/cli/main.js";
import { allKeys, type KeyInfo } from "../../src/config/keys.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";

export interface ConfigParams {
  /** Also check each bad value through the environment (`INFERNO_SECTION__KEY`). */
  environment: boolean;
}

/** A value as `config set` takes it (text) and as a configuration file holds it (typed TOML). */
interface BadValue {
  text: string;
  typed: unknown;
  why: string;
}

interface Bounds {
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  type?: string;
  anyOf?: Bounds[];
  items?: Bounds;
}

/** The key's range as JSON Schema states it (the generated reference shows the same). */
function boundsOf(key: KeyInfo): Bounds {
  return z.toJSONSchema(key.schema, { unrepresentable: "any" }) as Bounds;
}

/** Values of other types than the key's, and values just outside its range. */
export function badValues(key: KeyInfo): BadValue[] {
  const b = boundsOf(key);
  const out: BadValue[] = [];
  const numeric = key.kind === "integer" || key.kind === "number";
  if (numeric) {
    out.push({ text: "many", typed: "many", why: "a word for a number" });
    out.push({ text: "true", typed: true, why: "a boolean for a number" });
    out.push({ text: "[1, 2]", typed: [1, 2], why: "a list for a number" });
    out.push({ text: "NaN", typed: Number.NaN, why: "NaN" });
    out.push({ text: "inf", typed: Number.POSITIVE_INFINITY, why: "infinity" });
    if (key.kind === "integer") out.push({ text: "1.5", typed: 1.5, why: "a fraction for a whole number" });
    const low = b.minimum !== undefined ? b.minimum - 1 : b.exclusiveMinimum;
    const high = b.maximum !== undefined ? b.maximum + 1 : b.exclusiveMaximum;
    if (low !== undefined) out.push({ text: String(low), typed: low, why: `below the minimum` });
    if (high !== undefined && Number.isSafeInteger(high))
      out.push({ text: String(high), typed: high, why: `above the maximum` });
    out.push({ text: "1e400", typed: Number.POSITIVE_INFINITY, why: "a number beyond double range" });
  }
  if (key.kind === "boolean") {
    out.push({ text: "maybe", typed: "maybe", why: "a word for a boolean" });
    out.push({ text: "2", typed: 2, why: "a number for a boolean" });
  }
  if (key.kind === "enum" || key.kind === "gpu") {
    out.push({ text: "no-such-choice", typed: "no-such-choice", why: "not one of the choices" });
    out.push({ text: "3", typed: 3, why: "a number for a choice" });
  }
  if (key.kind === "string") {
    if ((b.minLength ?? 0) > 0) out.push({ text: "", typed: "", why: "an empty string" });
    out.push({ text: "", typed: 42, why: "a number for a string" });
    out.push({ text: "", typed: ["a"], why: "a list for a string" });
  }
  if (key.kind === "string-list") {
    out.push({ text: "", typed: "not-a-list", why: "a string for a list" });
    out.push({ text: "", typed: [1, 2], why: "numbers in a list of strings" });
    if ((b.items?.minLength ?? 0) > 0)
      out.push({ text: `["a", ""]`, typed: ["a", ""], why: "an empty name in the list" });
  }
  return out;
}

/** A per-model key (`cache.models.<name>.…`) with a model name filled in. */
function concretePath(key: KeyInfo): string[] {
  return key.path.map((p) => (p === "<name>" ? "tiny" : p));
}

function nested(path: string[], value: unknown): Record<string, unknown> {
  return path.reduceRight<unknown>((inner, step) => ({ [step]: inner }), value) as Record<string, unknown>;
}

/** The environment variable that sets a key (`INFERNO_` + path joined by `__`, upper case). */
function envName(path: string[]): string {
  return `INFERNO_${path.map((p) => p.toUpperCase()).join("__")}`;
}

async function cli(
  args: string[],
  where: { env: Record<string, string>; cwd: string },
): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const sink = () => new Writable({ write: (_c, _e, done) => done() });
  const err = new Writable({
    write(chunk: Buffer, _encoding, done) {
      stderr += chunk.toString();
      done();
    },
  });
  const code = await main(["node", "inferno", ...args], {
    stdout: sink(),
    stderr: err,
    env: where.env,
    cwd: where.cwd,
  });
  return { code, stderr };
}

const SEED = "# the user's own file, with a comment\n[server]\nport = 8080 # their port\n";

export async function configKeys(p: ConfigParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  await withTempDir("config", async (root) => {
    const home = join(root, "home");
    const cwd = join(root, "work");
    await Promise.all([home, cwd].map((d) => mkdir(d, { recursive: true })));
    const env = { HOME: home, XDG_CONFIG_HOME: join(root, "xdg"), PATH: process.env.PATH ?? "" };
    const file = join(cwd, ".inferno.toml");
    const keys = allKeys();
    tally.set("keys", keys.length);
    for (const key of keys) {
      const path = concretePath(key);
      const dotted = path.map((s) => (/^[\w-]+$/.test(s) ? s : JSON.stringify(s))).join(".");
      const values = badValues(key);
      tally.check(values.length > 0, () => `${key.key}: no bad value generated for kind ${key.kind}`);
      for (const bad of values) {
        // Through `config set` (only values a command line can spell: a string key takes any text).
        if (key.kind !== "string" && !(key.kind === "string-list" && bad.text === "")) {
          await writeFile(file, SEED);
          const set = await cli(["config", "set", dotted, bad.text], { env, cwd });
          tally.count("config_set_runs");
          const untouched = (await readFile(file, "utf8")) === SEED && (await readdir(cwd)).length === 1;
          if (
            tally.check(
              set.code === 2 && untouched,
              () =>
                `config set ${dotted} ${JSON.stringify(bad.text)} (${bad.why}): exit ${set.code}, file ${untouched ? "untouched" : "changed"}`,
            )
          ) {
            tally.count("config_set_refused_with_exit_2_file_untouched");
          }
        }
        // Through a configuration file, typed as TOML would hold it (TOML has no NaN-free guarantee: smol-toml writes nan/inf).
        await writeFile(file, stringifyToml(nested(path, bad.typed)));
        const validate = await cli(["config", "validate"], { env, cwd });
        tally.count("config_file_runs");
        if (
          tally.check(
            validate.code === 2,
            () =>
              `${key.key} = ${JSON.stringify(bad.typed)} in a file (${bad.why}): config validate exit ${validate.code}`,
          )
        ) {
          tally.count("config_file_refused_with_exit_2");
        }
        if (p.environment && bad.text !== "" && !path.includes("tiny")) {
          await writeFile(file, SEED);
          const fromEnv = await cli(["config", "validate"], { env: { ...env, [envName(path)]: bad.text }, cwd });
          tally.count("environment_runs");
          if (
            tally.check(
              fromEnv.code === 2,
              () => `${envName(path)}=${bad.text} (${bad.why}): config validate exit ${fromEnv.code}`,
            )
          ) {
            tally.count("environment_refused_with_exit_2");
          }
        }
      }
    }
  });
  return tally.result();
}

export const configKeysScenario: Scenario<ConfigParams> = {
  name: "config",
  title:
    "every configuration key with wrong types and out-of-range values (config set, file, environment): exit 2, nothing written",
  full: { environment: true },
  bounded: { environment: false },
  run: configKeys,
};
