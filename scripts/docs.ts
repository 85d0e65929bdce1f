/**
 * `npm run docs` writes every generated part of the docs; `npm run docs:check` (part of `npm test`) fails when one is
 * not current, when a relative link or `#anchor` in README.md, docs/ or a notes file leads nowhere, or when the README
 * outgrows {@link README_MAX_LINES} lines.
 *
 * Each generated block sits between `<!-- generated:NAME … -->` and `<!-- /generated:NAME -->` and is rendered from one
 * source: the configuration reference (docs/configuration.md) and the key table `--help` reads
 * (src/config/reference.generated.ts) from the schema, the benchmark table (docs/benchmarks.md) from
 * bench/results/latest.json, the reliability table (docs/reliability.md) from stress/results/latest.json, the
 * clients table (docs/clients.md) from package-lock.json; and one
 * generated code file: the status page's script bundled from TypeScript (scripts/status-page.ts).
 * `npm run bench` and `npm run stress` call {@link writeGenerated} after they write their results.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderBlock, SECTION_ORDER } from "../bench/readme.js";
import { readResults } from "../bench/report.js";
import { allKeys, envNameOf, sectionDescription } from "../src/config/index.js";
import { reliabilitySection, type StressMachine, type StressOutcome } from "../stress/report.js";
import { SCENARIOS } from "../stress/scenarios/index.js";
import { renderStatusScript } from "./status-page.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function showDefault(value: unknown, key: string): string {
  if (key === "cache.cache_dir") return "platform cache dir + `/inferno`";
  if (value === undefined) return "—";
  return `\`${JSON.stringify(value)}\``;
}

/** The configuration reference: one table per section, every key with its type, default, variable and meaning. */
export function renderReference(): string {
  const keys = allKeys();
  const sections = new Map<string, typeof keys>();
  for (const key of keys) {
    const section = key.path.length > 1 ? (key.path[0] as string) : "";
    sections.set(section, [...(sections.get(section) ?? []), key]);
  }
  const lines: string[] = [];
  for (const [section, sectionKeys] of sections) {
    lines.push(section === "" ? "### Top level" : `### \`[${section}]\``, "");
    const description = section === "" ? "" : sectionDescription(section);
    if (description) lines.push(description, "");
    lines.push("| key | type | default | environment | meaning |", "| --- | --- | --- | --- | --- |");
    for (const key of sectionKeys) {
      const choices = key.choices?.map((c) => `\`${c}\``).join(" \\| ");
      const type = choices === undefined ? key.kind : key.kind === "string-list" ? `list of ${choices}` : choices;
      const env = key.path.includes("<name>") ? "—" : `\`${envNameOf(key.path)}\``;
      const meaning = key.description.replaceAll("|", "\\|");
      lines.push(`| \`${key.key}\` | ${type} | ${showDefault(key.defaultValue, key.key)} | ${env} | ${meaning} |`);
    }
    lines.push("");
  }
  return lines.join("\n").trimEnd();
}

/**
 * src/config/reference.generated.ts: every fixed key's description and choices as plain data. The CLI builds its help
 * from it without importing the schema (zod alone costs more start-up than the rest of `inferno --help`).
 */
export function renderKeyTable(): string {
  const entries = allKeys()
    .filter((key) => !key.path.includes("<name>"))
    .map((key) => {
      const choices = key.choices === undefined ? "" : `, choices: ${JSON.stringify(key.choices)}`;
      return `  ${JSON.stringify(key.key)}: { description: ${JSON.stringify(key.description)}${choices} },`;
    });
  return [
    "/**",
    " * Generated from src/config/schema.ts by `npm run docs` (checked by `npm run docs:check`); do not edit.",
    " * Each fixed key's description and choices as plain data, so `--help` needs no zod (see src/cli/flags.ts).",
    " */",
    "export const KEY_REFERENCE = {",
    ...entries,
    "} as const;",
    "",
  ].join("\n");
}

async function renderBenchmarks(): Promise<string> {
  const results = await readResults();
  if (!results) return "No results yet: run `npm run bench`.";
  return renderBlock(results, SECTION_ORDER);
}

/** The clients the tests drive against a live server: package, what is run, where. Versions come from the lock file. */
const CLIENTS: ReadonlyArray<{ pkg: string; what: string; tests: string }> = [
  {
    pkg: "openai",
    what: "chat (tools, `parse` with zod), completions, embeddings, Responses; every field it declares classified",
    tests: "test/server/agents.test.ts, fields-*.test.ts",
  },
  {
    pkg: "ai",
    what: "with `@ai-sdk/openai`: generateText/streamText, generateObject with everyday zod, a multi-step tool loop, tools beside Output.object",
    tests: "test/server/clients.test.ts",
  },
  {
    pkg: "@ai-sdk/openai",
    what: "the provider of the line above: Responses (default) and chat",
    tests: "test/server/clients.test.ts",
  },
  {
    pkg: "@langchain/openai",
    what: "ChatOpenAI: invoke/stream, bindTools, a tool-message round trip, named messages, withStructuredOutput",
    tests: "test/server/clients.test.ts",
  },
  { pkg: "@langchain/core", what: "tools and messages for the line above", tests: "test/server/clients.test.ts" },
  {
    pkg: "ollama",
    what: "list, chat, generate (streamed), embed, keep_alive, `num_ctx`, `repeat_penalty`, `num_thread`, names",
    tests: "test/server/ollama.test.ts, names.test.ts",
  },
];

/** The clients table of docs/clients.md: each client at the version `npm ci` installs (package-lock.json). */
export function renderClients(): string {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  const rows = CLIENTS.map(({ pkg, what, tests }) => {
    const version = lock.packages[`node_modules/${pkg}`]?.version;
    if (version === undefined) throw new Error(`package-lock.json has no ${pkg}`);
    return `| \`${pkg}\` | ${version} | ${what} | ${tests} |`;
  });
  return ["| client | version | what the tests run | where |", "|---|---|---|---|", ...rows].join("\n");
}

async function renderReliability(): Promise<string> {
  const file = join(ROOT, "stress/results/latest.json");
  if (!existsSync(file)) return "No results yet: run `npm run stress`.";
  const { machine, results } = JSON.parse(readFileSync(file, "utf8")) as {
    machine: StressMachine;
    results: Record<string, StressOutcome>;
  };
  return reliabilitySection(machine, results, Object.fromEntries(SCENARIOS.map((s) => [s.name, s.title])));
}

/** One generated output: a block between markers in a markdown file, or (`whole`) a whole file. */
interface Generated {
  name: string;
  /** Relative to the repository root. */
  file: string;
  /** What it is generated from, for the messages. */
  source: string;
  whole?: boolean;
  render(): string | Promise<string>;
}

export const GENERATED: readonly Generated[] = [
  { name: "config-reference", file: "docs/configuration.md", source: "src/config/schema.ts", render: renderReference },
  {
    name: "key-table",
    file: "src/config/reference.generated.ts",
    source: "src/config/schema.ts",
    whole: true,
    render: renderKeyTable,
  },
  { name: "bench-table", file: "docs/benchmarks.md", source: "bench/results/latest.json", render: renderBenchmarks },
  {
    name: "stress-table",
    file: "docs/reliability.md",
    source: "stress/results/latest.json",
    render: renderReliability,
  },
  { name: "clients-table", file: "docs/clients.md", source: "package-lock.json", render: renderClients },
  {
    name: "status-script",
    file: "src/server/status-page/script.generated.ts",
    source: "src/server/status-page/script.ts",
    whole: true,
    render: renderStatusScript,
  },
];

/**
 * The one splicer: `text` with the body between `<!-- generated:NAME … -->` and `<!-- /generated:NAME -->` replaced
 * (a blank line either side of it). Throws when the markers are missing.
 */
export function splice(text: string, name: string, body: string, file = "the file"): string {
  const start = text.indexOf(`<!-- generated:${name} `);
  const startEnd = start < 0 ? -1 : text.indexOf("-->", start);
  const end = text.indexOf(`<!-- /generated:${name} -->`);
  if (start < 0 || startEnd < 0 || end < startEnd) throw new Error(`${file} has no generated:${name} markers`);
  return `${text.slice(0, startEnd + 3)}\n\n${body}\n\n${text.slice(end)}`;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * Renders the named outputs (default: all) and writes those that changed; with `check`, writes nothing. Returns a
 * sentence for each output that was (or, with `check`, is) out of date.
 */
export async function writeGenerated(names?: readonly string[], check = false): Promise<string[]> {
  const unknown = names?.filter((n) => !GENERATED.some((g) => g.name === n)) ?? [];
  if (unknown.length > 0) throw new Error(`no generated block named ${unknown.join(", ")}`);
  const stale: string[] = [];
  for (const g of GENERATED.filter((g) => names === undefined || names.includes(g.name))) {
    const path = join(ROOT, g.file);
    const old = read(path);
    const body = await g.render();
    const text = g.whole ? body : splice(old ?? "", g.name, body, g.file);
    if (text === old) continue;
    stale.push(`${g.file} (${g.name}) ${check ? "is out of date with" : "regenerated from"} ${g.source}`);
    if (!check) writeFileSync(path, text);
  }
  return stale;
}

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`. */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[`*]/g, "")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
    .replaceAll(" ", "-");
}

/** The lines outside fenced code blocks, with their numbers. */
function proseLines(text: string): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  let fence: string | undefined;
  text.split("\n").forEach((line, i) => {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker !== undefined && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence === undefined) lines.push([i + 1, line]);
  });
  return lines;
}

/** A line with its inline code blanked out: a link inside code is not a link. */
const withoutCode = (line: string) => line.replace(/(`+)[^`]*?\1/g, (code) => " ".repeat(code.length));

/** Every anchor a markdown file has: its headings' slugs (repeats numbered as GitHub does) and HTML ids. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, line] of proseLines(text)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading !== undefined) {
      const base = slug(heading);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      found.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const match of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) found.add(match[1] as string);
  }
  return found;
}

/** `file:line: message` for each relative link or anchor in `files` (paths from `root`) that leads nowhere. */
export function brokenLinks(files: readonly string[], root = ROOT): string[] {
  const problems: string[] = [];
  const anchorsOf = new Map<string, Set<string>>();
  const anchorsIn = (path: string) => {
    let set = anchorsOf.get(path);
    if (!set) anchorsOf.set(path, (set = anchors(readFileSync(path, "utf8"))));
    return set;
  };
  for (const file of files) {
    const path = join(root, file);
    for (const [line, raw] of proseLines(readFileSync(path, "utf8"))) {
      const text = withoutCode(raw);
      const targets = [
        ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] as string),
        ...[...text.matchAll(/^\s*\[[^\]]+\]:\s+(\S+)/g)].map((m) => m[1] as string),
      ];
      for (const target of targets) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
        const [pathPart = "", anchor] = target.split("#", 2);
        const to = pathPart === "" ? path : resolve(dirname(path), decodeURIComponent(pathPart));
        const where = `${file}:${line}: ${target}`;
        if (!existsSync(to)) {
          problems.push(`${where}: no file ${relative(root, to)}`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!to.endsWith(".md") || statSync(to).isDirectory())
          problems.push(`${where}: an anchor into a non-markdown file`);
        else if (!anchorsIn(to).has(decodeURIComponent(anchor)))
          problems.push(`${where}: no heading #${anchor} in ${relative(root, to)}`);
      }
    }
  }
  return problems;
}

/** The files whose links are checked: the README, docs/ and the notes beside the bench and stress results. */
export function linkedFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs, "bench/NOTES.md", "stress/NOTES.md"].filter((f) => existsSync(join(ROOT, f)));
}

/** The README gets a newcomer to a first answer and links the rest: it stays short. */
export const README_MAX_LINES = 200;

async function main(): Promise<void> {
  const check = process.argv.includes("--check");
  const stale = await writeGenerated(undefined, check);
  if (check) {
    for (const s of stale) console.error(`${s}: run \`npm run docs\`.`);
    const broken = brokenLinks(linkedFiles());
    for (const b of broken) console.error(`broken link: ${b}`);
    const readmeLines = readFileSync(join(ROOT, "README.md"), "utf8").trimEnd().split("\n").length;
    const long = readmeLines > README_MAX_LINES;
    if (long)
      console.error(`README.md has ${readmeLines} lines, more than ${README_MAX_LINES}: move the detail to docs/.`);
    if (stale.length + broken.length > 0 || long) process.exit(1);
    console.log(
      `generated blocks current (${GENERATED.length}); links and anchors resolve (${linkedFiles().length} files); ` +
        `README.md ${readmeLines} lines (at most ${README_MAX_LINES})`,
    );
    return;
  }
  for (const s of stale) console.log(s);
  if (stale.length === 0) console.log("every generated block was current");
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
