/**
 * The status page's script is TypeScript (src/server/status-page/script.ts) bundled into a generated module that the
 * server serves, so an installed package needs no build step for it. The generated module must be what esbuild makes
 * of the source today.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { renderStatusScript } from "../../scripts/status-page.js";
import { STATUS_SCRIPT } from "../../src/server/status-page/script.generated.js";

const GENERATED = new URL("../../src/server/status-page/script.generated.ts", import.meta.url);

test("script.generated.ts is the current bundle of script.ts (else: npm run docs)", async () => {
  assert.equal(await readFile(GENERATED, "utf8"), await renderStatusScript());
});

test("the bundle is one self-contained browser script: no imports left, the shared byte formatter inside", () => {
  assert.doesNotMatch(STATUS_SCRIPT, /\bimport\b|\brequire\(/);
  assert.match(STATUS_SCRIPT, /"KiB","MiB","GiB"/);
  assert.doesNotThrow(() => new Function(STATUS_SCRIPT));
});
