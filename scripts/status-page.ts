/**
 * Bundles the status page's script (src/server/status-page/script.ts, TypeScript for the browser) with esbuild into
 * src/server/status-page/script.generated.ts, which the server serves as `GET /status.js`: the installed package needs
 * neither esbuild nor a build step for it. `--check` fails when the generated file is not current (as does
 * test/server/status-script.test.ts).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const SOURCE = fileURLToPath(new URL("../src/server/status-page/script.ts", import.meta.url));
export const GENERATED = fileURLToPath(new URL("../src/server/status-page/script.generated.ts", import.meta.url));

/** The generated module's text: the bundled script (minified, one IIFE, no imports left) as a string constant. */
export async function renderStatusScript(): Promise<string> {
  const result = await build({
    entryPoints: [SOURCE],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "none",
    write: false,
  });
  const js = result.outputFiles[0]?.text ?? "";
  return (
    "/**\n" +
    " * Generated from src/server/status-page/script.ts by `npm run build:status-page` (checked by\n" +
    " * test/server/status-script.test.ts); do not edit.\n" +
    " */\n" +
    `export const STATUS_SCRIPT = ${JSON.stringify(js)};\n`
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await renderStatusScript();
  if (process.argv.includes("--check")) {
    if (readFileSync(GENERATED, "utf8") !== text) {
      console.error(`${GENERATED} is stale: run npm run build:status-page`);
      process.exit(1);
    }
  } else {
    writeFileSync(GENERATED, text);
    console.log(`wrote ${GENERATED} (${text.length} bytes)`);
  }
}
