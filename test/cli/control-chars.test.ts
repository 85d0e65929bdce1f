/**
 * Control characters in model names are escaped where the CLI prints them (issue 23, item 7): a newline in a file
 * name split a `models list` row, and an escape sequence from a name reached the terminal.
 */
import assert from "node:assert/strict";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { printable } from "../../src/cli/io.js";
import { cliSandbox } from "../../testkit/cli.js";

test("printable escapes C0, DEL and C1; keeps other text", () => {
  assert.equal(printable("a\nb\tc\r\u001b[31mred\u007f\u009b"), "a\\nb\\tc\\r\\x1b[31mred\\x7f\\x9b");
  assert.equal(printable("line\nnext", "newlines"), "line\nnext");
  assert.equal(printable("naïve 模型 ✓"), "naïve 模型 ✓");
});

test("a model file named with a newline and an escape lists as one escaped row", async (t) => {
  const s = await cliSandbox(t);
  assert.equal((await s.run(["models", "demo"])).code, 0);
  const dir = s.modelsDir;
  await copyFile(join(dir, "inferno-demo.gguf"), join(dir, "evil\n\u001b[2Jname.gguf"));
  const table = await s.run(["models", "list"]);
  assert.equal(table.code, 0, table.stderr);
  assert.ok(!table.stdout.includes("\u001b"), "no escape reached the output");
  const rows = table.stdout.trim().split("\n");
  assert.equal(rows.length, 3, table.stdout);
  assert.ok(
    rows.some((row) => row.startsWith("evil\\n\\x1b[2Jname.gguf")),
    table.stdout,
  );
});
