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

function keyBlock(info: KeyInfo, defaultCacheDir: string): string[] {
  const name = info.path[info.path.length - 1] as string;
  const value = info.key === "cache.cache_dir" ? defaultCacheDir : info.defaultValue;
  return [...commentLines(info.description), `# ${formatKey([name])} = ${tomlValue(value)}`, ""];
}

/** The starter file's text. `defaultCacheDir` is shown as `cache.cache_dir`'s value, which has no fixed default. */
export function starterConfig(defaultCacheDir: string): string {
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
    for (const info of keys) lines.push(...keyBlock(info, defaultCacheDir));
    if (section === "cache") lines.push(...recordExample(recordKeys));
  }
  return `${lines.join("\n").trimEnd()}\n`;
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
