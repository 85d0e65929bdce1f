/**
 * The status page's script (src/server/status-page/script.ts, TypeScript for the browser) bundled by esbuild into
 * src/server/status-page/script.generated.ts, which the server serves as `GET /status.js`: the installed package needs
 * neither esbuild nor a build step for it. scripts/docs.ts owns the output (`npm run docs` writes it, `npm run
 * docs:check` fails when it is stale).
 */
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const SOURCE = fileURLToPath(new URL("../src/server/status-page/script.ts", import.meta.url));

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
  return [
    "/**",
    " * Generated from src/server/status-page/script.ts by `npm run docs` (checked by `npm run docs:check`); do not edit.",
    " */",
    `export const STATUS_SCRIPT = ${JSON.stringify(js)};`,
    "",
  ].join("\n");
}
