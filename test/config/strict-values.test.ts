/**
 * Text values (environment variables, flags) are read strictly (issue 23, item 7): numbers only as decimal TOML writes
 * them, no space around, in range; booleans as true/false or the usual 1/0, yes/no, on/off (documented in values.ts).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { loadConfig } from "../../src/config/index.js";
import { ConfigInvalid } from "../../src/errors/index.js";
import { tempDir } from "../../testkit/tmp.js";

it("1e3, ' 80', 0x10, 2^31 tokens and a half-life of 1e-300 are refused; 1_000 and 8080 are read", async (t) => {
  const cwd = await tempDir(t, "inferno-values-");
  const load = (env: Record<string, string>) => loadConfig({ env: { HOME: cwd, ...env }, cwd });
  for (const [name, value] of [
    ["INFERNO_SERVER__PORT", "1e3"],
    ["INFERNO_SERVER__PORT", " 80"],
    ["INFERNO_SERVER__PORT", "80 "],
    ["INFERNO_CACHE__MAX_MEMORY_MB", "0x10"],
    ["INFERNO_CACHE__MAX_MEMORY_MB", "Infinity"],
    ["INFERNO_BACKEND__CONTEXT_SIZE", "2147483648"],
    ["INFERNO_BACKEND__CONTEXT_SIZE", "2^31"],
    ["INFERNO_CACHE__USAGE_HALF_LIFE_HOURS", "1e-300"],
    ["INFERNO_BACKEND__MMAP", "maybe"],
  ] as const) {
    await assert.rejects(load({ [name]: value }), ConfigInvalid, `${name}=${JSON.stringify(value)}`);
  }
  assert.equal((await load({ INFERNO_SERVER__PORT: "8080" })).server.port, 8080);
  assert.equal((await load({ INFERNO_CACHE__MAX_MEMORY_MB: "1_000" })).cache.max_memory_mb, 1000);
  assert.equal((await load({ INFERNO_CACHE__USAGE_HALF_LIFE_HOURS: "0.5" })).cache.usage_half_life_hours, 0.5);
  assert.equal((await load({ INFERNO_BACKEND__MMAP: "yes" })).backend.mmap, true);
  assert.equal((await load({ INFERNO_BACKEND__MMAP: "0" })).backend.mmap, false);
});
