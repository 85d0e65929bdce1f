/**
 * The commented starter file `config init` writes, generated from the schema so it lists every key with its meaning
 * and default and cannot fall behind the schema. Every setting is commented out: the file changes nothing until a line
 * is uncommented, and `config set` later fills in the section headers it leaves in place.
 */
import { allKeys, formatKey, type KeyInfo, sectionDescription } from "./keys.js";
import { tomlValue } from "./render.js";

const WIDTH = 100;

function commentLines(text: string): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line.length + word.length + 1 > WIDTH && line !== "#") {
      lines.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  return [...lines, line];
}

/**
 * A key's block: its meaning, then the line to uncomment with its default — the value found here for a path whose
 * default depends on the machine, `…` for a key with none (its meaning says what applies).
 */
function keyBlock(info: KeyInfo, paths: StarterPaths): string[] {
  const name = info.path[info.path.length - 1] as string;
  const value = paths[info.key as keyof StarterPaths] ?? info.defaultValue;
  const shown = value === undefined ? "…" : tomlValue(value);
  return [...commentLines(info.description), `# ${formatKey([name])} = ${shown}`, ""];
}

/** The defaults that depend on the machine and the user, shown as the values of their keys. */
export interface StarterPaths {
  models_dir: string;
  "cache.cache_dir": string;
}

/** The starter file's text. */
export function starterConfig(paths: StarterPaths): string {
  const lines = [
    "# Inferno configuration. Every setting below shows its default; uncomment a line to change it,",
    "# or use `inferno config set KEY VALUE`. Reference: docs/configuration.md.",
    "",
  ];
  const sections = new Map<string, KeyInfo[]>();
  const recordKeys: KeyInfo[] = [];
  for (const info of allKeys()) {
    if (info.path.includes("<name>")) recordKeys.push(info);
    else {
      const section = info.path.length > 1 ? (info.path[0] as string) : "";
      sections.set(section, [...(sections.get(section) ?? []), info]);
    }
  }
  for (const [section, keys] of sections) {
    if (section !== "") lines.push(...commentLines(sectionDescription(section)), `[${section}]`, "");
    for (const info of keys) lines.push(...keyBlock(info, paths));
    if (section === "cache") lines.push(...recordExample(recordKeys.filter((k) => k.path[0] === "cache")));
  }
  lines.push(...presetExample(recordKeys.filter((k) => k.path[0] === "models")));
  return `${lines.join("\n").trimEnd()}\n`;
}

/** The model preset table (`[models."NAME"]`), as a commented example: its keys have no defaults, so no values. */
function presetExample(keys: KeyInfo[]): string[] {
  if (keys.length === 0) return [];
  const lines = [
    "# Model presets, one table per name of your choosing (docs/models.md, Presets):",
    '# [models."my-preset"]',
  ];
  for (const info of keys) lines.push(...commentLines(info.description), `# ${info.path[info.path.length - 1]} = …`);
  return [...lines, ""];
}

/** The per-model override table, as a commented example under a made-up model name. */
function recordExample(keys: KeyInfo[]): string[] {
  if (keys.length === 0) return [];
  const first = keys[0] as KeyInfo;
  const table = formatKey(first.path.slice(0, -1).map((s) => (s === "<name>" ? "my_model.gguf" : s)));
  const lines = ["# Per-model overrides, one table per model name:", `# [${table}]`];
  for (const info of keys) {
    const example = info.kind === "boolean" ? false : 600;
    lines.push(...commentLines(info.description), `# ${info.path[info.path.length - 1]} = ${tomlValue(example)}`);
  }
  return [...lines, ""];
}
