/** Writing configuration values back out as TOML, for `config show`, `config get` and the starter file. */
import { stringify } from "smol-toml";
import { formatKey } from "./keys.js";
import { isTable, type Tree } from "./tree.js";

/** A value as it reads on the right of `key = ` in TOML. */
export function tomlValue(value: unknown): string {
  return stringify({ v: value }).replace(/^v = /, "").trimEnd();
}

/**
 * A tree as TOML: each table's values first, then its sub-tables as `[a.b]` sections (empty tables are left out).
 * `note(path)` may add a trailing comment to a value (`config show --origin`); `prefix` is the path of `tree` itself.
 */
export function renderToml(tree: Tree, note?: (path: string[]) => string | undefined, prefix: string[] = []): string {
  const blocks: string[] = [];
  const walk = (table: Tree, path: string[]): void => {
    const rows: Array<[string, string | undefined]> = [];
    const tables: Array<[string, Tree]> = [];
    for (const [name, value] of Object.entries(table)) {
      if (value === undefined) continue;
      if (isTable(value)) tables.push([name, value]);
      else rows.push([`${formatKey([name])} = ${tomlValue(value)}`, note?.([...path, name])]);
    }
    if (rows.length > 0) {
      const width = Math.max(...rows.map(([line]) => line.length));
      const lines = rows.map(([line, comment]) => (comment ? `${line.padEnd(width)}  # ${comment}` : line));
      blocks.push([...(path.length > 0 ? [`[${formatKey(path)}]`] : []), ...lines].join("\n"));
    }
    for (const [name, child] of tables) walk(child, [...path, name]);
  };
  walk(tree, prefix);
  return blocks.length > 0 ? `${blocks.join("\n\n")}\n` : "";
}
