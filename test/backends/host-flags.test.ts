/**
 * A model host's Node flags: a parent run as `node -e CODE` (or `-p`) must not hand its code to its hosts, which would
 * run it instead of their entry — code that starts a host would start one host after another.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { withoutEval } from "../../src/backends/host/host.js";
import { hostBundle } from "../../testkit/host-bundle.js";

test("withoutEval drops code given on the command line, in every spelling, and keeps every other flag", () => {
  const table: Array<[string[], string[]]> = [
    [["-e", "code"], []],
    [["--eval", "code", "--max-old-space-size=512"], ["--max-old-space-size=512"]],
    [["--eval=code"], []],
    [["-p", "1+1"], []],
    [["--print=1+1", "--trace-warnings"], ["--trace-warnings"]],
    [["--input-type=module", "-e", "code"], []],
    [["--input-type", "module", "--eval", "code"], []],
    [
      ["--import", "tsx", "--enable-source-maps"],
      ["--import", "tsx", "--enable-source-maps"],
    ],
  ];
  for (const [flags, kept] of table) assert.deepEqual(withoutEval(flags), kept, flags.join(" "));
});

test("a host started from `node -e` runs its entry and gets ready", async () => {
  const entry = await hostBundle();
  const hosted = new URL("../../src/backends/hosted.ts", import.meta.url).href;
  // A host that ran this code instead of its entry would find the mark and exit, failing `ready` (no second host).
  const code = `
    if (process.env.INFERNO_TEST_EVAL_PARENT) process.exit(3);
    process.env.INFERNO_TEST_EVAL_PARENT = "1";
    const { HostedBackend } = await import(${JSON.stringify(hosted)});
    const backend = new HostedBackend("gguf", { entry: ${JSON.stringify(entry)}, spare: false });
    await backend.ready({ gpu: false });
    await backend.dispose();
    console.log("ready");
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", code],
    { timeout: 60_000 },
  );
  assert.equal(stdout.trim(), "ready");
});
