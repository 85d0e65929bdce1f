/**
 * Editing a configuration file in place for `config set` / `config unset`: the change is applied to the TOML text with
 * a comment-preserving patcher, so every byte outside the changed value stays as the user wrote it.
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse as parsePreserving, patch } from "@decimalturn/toml-patch";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigInvalid } from "../errors/index.js";
import { writeFileAtomic } from "../fs/atomic-write.js";
import { formatKey } from "./keys.js";
import { isTable, type Tree } from "./tree.js";

/**
 * New tables are written as `[section]` headers at every depth, so a new per-model override reads like SPEC's
 * `[cache.models."my_model.gguf"]` rather than an inline table inside `[cache]`.
 */
const NEW_TABLES_AS_SECTIONS = { inlineTableStart: 8 } as const;

function parseFileText(text: string, file: string): Tree {
  try {
    return parsePreserving(text) as Tree;
  } catch (error) {
    // smol-toml's message names the line and column; re-parse with it only to report the problem well.
    let where = "";
    try {
      parseToml(text);
    } catch (tomlError) {
      if (tomlError instanceof TomlError) where = ` at line ${tomlError.line}, column ${tomlError.column}`;
    }
    throw new ConfigInvalid(`Configuration file ${file} is not valid TOML${where}; fix it by hand before editing it`, {
      cause: error,
      details: { source: file },
    });
  }
}

function patchText(text: string, updated: Tree): string {
  const out = patch(text, updated, NEW_TABLES_AS_SECTIONS);
  // A file created from nothing ends with a newline like any hand-written file; existing files keep their ending.
  return text === "" && out !== "" && !out.endsWith("\n") ? `${out}\n` : out;
}

/** JSON with object keys sorted: equal for equal data whatever order the keys were written in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isTable(value)) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "undefined";
}

/** Checks that the patched text means exactly `expected`, so a patcher surprise can never be written to disk. */
function assertMeans(text: string, expected: Tree, file: string): void {
  if (canonical(parseToml(text)) !== canonical(expected)) {
    throw new Error(`editing ${file} produced TOML that does not read back as intended; the file was not changed`);
  }
}

/** `text` with the key at `path` set to `value` (tables created as needed). `file` is only for messages. */
export function setInToml(text: string, path: readonly string[], value: unknown, file: string): string {
  const tree = parseFileText(text, file);
  let node = tree;
  for (const [i, segment] of path.slice(0, -1).entries()) {
    const child = node[segment];
    if (child === undefined) node[segment] = {};
    else if (!isTable(child)) {
      throw new ConfigInvalid(
        `Cannot set ${formatKey(path)} in ${file}: ${formatKey(path.slice(0, i + 1))} there is a value, not a table`,
        { details: { source: file } },
      );
    }
    node = node[segment] as Tree;
  }
  node[path[path.length - 1] as string] = value;
  const out = patchText(text, tree);
  assertMeans(out, tree, file);
  return out;
}

/** `text` without the key (or table) at `path`, or undefined when the file does not set it. */
export function unsetInToml(text: string, path: readonly string[], file: string): string | undefined {
  const tree = parseFileText(text, file);
  let node: unknown = tree;
  for (const segment of path.slice(0, -1)) node = isTable(node) ? node[segment] : undefined;
  const name = path[path.length - 1] as string;
  if (!isTable(node) || !(name in node)) return undefined;
  delete node[name];
  const out = patchText(text, tree);
  assertMeans(out, tree, file);
  return out;
}

/** The text of a configuration file, or `""` when it does not exist yet. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "";
    throw new ConfigInvalid(
      `Cannot read configuration file ${file}: ${code === "EISDIR" ? "is a directory" : (error as Error).message}`,
      {
        cause: error,
        details: { source: file },
      },
    );
  }
}

/** Writes a configuration file atomically and durably (fs/atomic-write.ts), creating its directory if needed. */
export async function writeConfigText(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, text);
}

/**
 * Creates a new configuration file atomically and durably, refusing to replace one that exists (an exclusive atomic
 * write: the check and the creation are one step). Resolves to false, writing nothing, when the file already exists.
 */
export async function createConfigFile(file: string, text: string): Promise<boolean> {
  await mkdir(dirname(file), { recursive: true });
  try {
    await writeFileAtomic(file, text, { exclusive: true });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}
