/**
 * The published package, as a project that installs it sees it: the declarations `npm run build` emits import only
 * packages that bring their types along (a devDependency's `@types/*` is not installed for them), and the tarball
 * (`npm pack --dry-run`) holds the CLI, the build and the docs — no sources, tests or local files.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  bin: Record<string, string>;
};

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return files(path, suffix);
    return entry.name.endsWith(suffix) ? [path] : [];
  });
}

/** `hono/utils` → `hono`, `@hono/node-server/x` → `@hono/node-server`; null for relative and node: imports. */
function packageOf(specifier: string): string | null {
  if (specifier.startsWith(".") || specifier.startsWith("node:") || builtinModules.includes(specifier)) return null;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** Whether `name`, as installed, ships declarations of its own. */
function shipsTypes(name: string): boolean {
  const dir = join(ROOT, "node_modules", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, unknown>;
  return (
    typeof manifest.types === "string" ||
    typeof manifest.typings === "string" ||
    JSON.stringify(manifest.exports ?? {}).includes('"types"') ||
    existsSync(join(dir, "index.d.ts"))
  );
}

describe("the published package", () => {
  it("emits declarations that import only dependencies with their own types", async () => {
    const out = await mkdtemp(join(tmpdir(), "inferno-dts-"));
    try {
      await run(
        process.execPath,
        [
          join(ROOT, "node_modules/typescript/bin/tsc"),
          ...["-p", join(ROOT, "tsconfig.build.json"), "--outDir", out, "--emitDeclarationOnly", "--declaration"],
        ],
        { cwd: ROOT },
      );
      const problems = new Set<string>();
      for (const file of files(out, ".d.ts")) {
        const text = readFileSync(file, "utf8");
        for (const [, specifier] of text.matchAll(/(?:from |import\()"([^"]+)"/g)) {
          const name = packageOf(specifier!);
          if (name === null) continue;
          const where = file.slice(out.length + 1);
          if (!(name in pkg.dependencies)) problems.add(`${where} imports ${name}, not a dependency`);
          else if (!shipsTypes(name) && !(`@types/${name.replace("@", "").replace("/", "__")}` in pkg.dependencies)) {
            problems.add(`${where} imports ${name}, whose types a dependent project does not get`);
          }
        }
      }
      assert.deepEqual([...problems], []);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it("packs the CLI, the build and the docs, and nothing of the sources, tests or local setup", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: ROOT,
      env: { ...process.env, npm_config_loglevel: "silent" },
    });
    const [packed] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const paths = packed.files.map((f) => f.path);
    for (const bin of Object.values(pkg.bin)) assert.ok(paths.includes(bin), `${bin} is packed`);
    assert.ok(paths.includes("docs/library.md"));
    const stray = paths.filter(
      (p) => !/^(bin|dist|docs)\//.test(p) && !["package.json", "README.md", "LICENSE"].includes(p),
    );
    assert.deepEqual(stray, []);
    assert.deepEqual(
      paths.filter((p) => /\.test\.|(^|\/)(test|testkit|src)\/|\.env|\.npmrc/.test(p)),
      [],
    );
  });
});
