import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import { formatUntil, untilOf } from "../../src/cli/actions/ps.js";
import { serverUrl } from "../../src/runtime/index.js";
import { formatBytes } from "../../src/units.js";

describe("inferno ps formatting", () => {
  const bytes: Array<[number, string]> = [
    [0, "0 B"],
    [999, "999 B"],
    [1000, "1000 B"],
    [1024, "1.0 KiB"],
    [789_000, "770.5 KiB"],
    [1_433_344, "1.4 MiB"],
    [13_279_744, "12.7 MiB"],
    [4_700_000_000, "4.4 GiB"],
  ];
  for (const [input, expected] of bytes)
    it(`${input} bytes → ${expected}`, () => assert.equal(formatBytes(input), expected));

  const now = Date.parse("2026-01-01T00:00:00Z");
  const until: Array<[number, string]> = [
    [0, "in 0 seconds"],
    [1_000, "in 1 second"],
    [59_999, "in 59 seconds"],
    [3_599_000, "in 59 minutes"],
    [3_600_000, "in 1 hour"],
    [2 * 86_400_000, "in 2 days"],
    [-5_000, "in 0 seconds"],
  ];
  for (const [ms, expected] of until) {
    it(`${ms} ms ahead → ${expected}`, () =>
      assert.equal(formatUntil(new Date(now + ms).toISOString(), now), expected));
  }

  const model: LoadedModelInfo = {
    name: "a.gguf",
    key: "/m/a.gguf",
    format: "gguf",
    state: "ready",
    size_bytes: 1,
    memory_bytes: 1,
    leases: 0,
    pinned: false,
    last_used: null,
    expires_at: null,
    load_ms: 1,
    pid: null,
    sequences: 1,
  };
  const states: Array<[Partial<LoadedModelInfo>, string]> = [
    [{ state: "loading" }, "loading"],
    [{ state: "unloading" }, "stopping"],
    [{ leases: 2, expires_at: new Date(now + 60_000).toISOString() }, "in use (2)"],
    [{ expires_at: new Date(now + 120_000).toISOString() }, "in 2 minutes"],
    [{ pinned: true }, "forever (pinned)"],
    [{}, "forever"],
  ];
  for (const [change, expected] of states) {
    it(`UNTIL of ${JSON.stringify(change)} → ${expected}`, () =>
      assert.equal(untilOf({ ...model, ...change }, now), expected));
  }
});

describe("serverUrl", () => {
  const cases: Array<[string, number, string | undefined, string]> = [
    ["127.0.0.1", 8080, undefined, "http://127.0.0.1:8080"],
    ["0.0.0.0", 9000, undefined, "http://127.0.0.1:9000"],
    ["::", 9000, undefined, "http://[::1]:9000"],
    ["::1", 9000, undefined, "http://[::1]:9000"],
    // Written with brackets, as in a URL: the same addresses (`dialHost`, shared with the server's warm-up requests).
    ["[::1]", 9000, undefined, "http://[::1]:9000"],
    ["[::]", 9000, undefined, "http://[::1]:9000"],
    ["127.0.0.1", 8080, "http://box:1234/", "http://box:1234"],
    ["127.0.0.1", 8080, "box:1234", "http://box:1234"],
  ];
  for (const [host, port, flag, expected] of cases) {
    it(`${host}:${port}${flag ? ` --server ${flag}` : ""} → ${expected}`, () =>
      assert.equal(serverUrl({ host, port }, flag), expected));
  }
  it("refuses a --server that is not an http(s) URL", () => {
    for (const flag of ["http://", "ftp://box:21", "htp://127.0.0.1:8080"]) {
      assert.throws(() => serverUrl({ host: "h", port: 1 }, flag), /^UsageError: --server expects a URL/, flag);
    }
    assert.equal(serverUrl({ host: "h", port: 1 }, "https://box"), "https://box");
  });
});
