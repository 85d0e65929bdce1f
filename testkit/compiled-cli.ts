/**
 * The CLI as JavaScript, for tests that spawn `inferno` processes (process.ts). A process started from the TypeScript
 * source runs under tsx: its loader thread, and again in the process node-llama-cpp forks (with the parent's flags) to
 * check its binary before llama.cpp starts, and in the state worker. Spawned from this tree instead — every `src/` file
 * compiled on its own by esbuild, as tsx compiles it, in the same layout, beside a copy of package.json — a server
 * answers its first request seconds sooner on a busy machine. The tree is named by the sources' content, so test
 * files running side by side share it, and it is built once while the sources are unchanged (~0.5 s); trees a day
 * old are removed when a new one is built.
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SOURCE = join(ROOT, "src");
/** Inside node_modules, so the compiled modules' package imports resolve as the source's do. */
const DIR = fileURLToPath(new URL("../node_modules/.cache/inferno-test", import.meta.url));
/** The model host entry of a compiled tree (testkit/hosts.ts tells hosts by their entry). */
export const COMPILED_HOST_PATTERN = /inferno-test\/cli-[0-9a-f]{16}\/src\/backends\/host\/main\.js$/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sources(path);
      return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
    })
    .sort();
}

/** Trees of sources changed since are removed once they are this old (a day: no test run lasts that long). */
const KEEP_MS = 24 * 3600_000;

function pruneOldTrees(): void {
  for (const name of readdirSync(DIR)) {
    const path = join(DIR, name);
    try {
      if (name.startsWith("cli-") && Date.now() - statSync(path).mtimeMs >= KEEP_MS) rmSync(path, { recursive: true });
    } catch {
      // removed meanwhile by another test file
    }
  }
}

function build(): string {
  const files = sources(SOURCE);
  const hash = createHash("sha256");
  for (const file of [...files, join(ROOT, "package.json")])
    hash.update(relative(ROOT, file)).update(readFileSync(file));
  const tree = join(DIR, `cli-${hash.digest("hex").slice(0, 16)}`);
  if (!existsSync(tree)) {
    const temporary = `${tree}.${process.pid}.tmp`;
    buildSync({
      entryPoints: files,
      outdir: join(temporary, "src"),
      outbase: SOURCE,
      format: "esm",
      platform: "node",
      logLevel: "error",
    });
    cpSync(join(ROOT, "package.json"), join(temporary, "package.json"));
    mkdirSync(DIR, { recursive: true });
    try {
      renameSync(temporary, tree);
    } catch (error) {
      // Another test file built the same tree meanwhile.
      rmSync(temporary, { recursive: true, force: true });
      if (!existsSync(tree)) throw error;
    }
    pruneOldTrees();
  }
  return join(tree, "src", "cli", "main.js");
}

let entry: string | undefined;

/** The compiled CLI's entry (`…/src/cli/main.js`), built on first use in this process. */
export function compiledCli(): string {
  entry ??= build();
  return entry;
}
