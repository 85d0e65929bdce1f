import assert from "node:assert/strict";
import { test } from "node:test";
import { parseKey, setInToml, suggestKeys, unsetInToml } from "../../src/config/index.js";
import { ConfigInvalid } from "../../src/errors/index.js";

test("parseKey splits dotted keys and keeps quoted segments whole", () => {
  const table: Array<[string, string[]]> = [
    ["models_dir", ["models_dir"]],
    ["cache.max_cached_models", ["cache", "max_cached_models"]],
    ['cache.models."my.model.gguf".pinned', ["cache", "models", "my.model.gguf", "pinned"]],
    ['"a.b"', ["a.b"]],
    ["a..b", ["a", "", "b"]],
    ["a.", ["a", ""]],
  ];
  for (const [key, path] of table) assert.deepEqual(parseKey(key), path, key);
  assert.throws(() => parseKey('cache."open'), /unterminated quote/);
  assert.throws(() => parseKey('"a"b'), /expected "\." after quoted segment/);
});

test("suggestKeys finds the intended key, including per-model keys under the name typed", () => {
  const table: Array<[string[], string]> = [
    [["cache", "max_cache_models"], "cache.max_cached_models"],
    [["port"], "server.port"],
    [["cache", "models", "x.gguf", "ttl"], 'cache.models."x.gguf".ttl_seconds'],
  ];
  for (const [path, expected] of table) assert.equal(suggestKeys(path, 1)[0], expected, path.join("."));
});

test("setInToml edits in place: dotted keys, quote style, CRLF line endings and a missing final newline are kept", () => {
  const table: Array<[string, string[], unknown, string]> = [
    ["cache.persist_cache = true\n", ["cache", "persist_cache"], false, "cache.persist_cache = false\n"],
    [
      "[cache]\r\npersist_cache = true\r\n",
      ["cache", "max_cached_models"],
      2,
      "[cache]\r\npersist_cache = true\r\nmax_cached_models = 2\r\n",
    ],
    ["models_dir = 'a' # c", ["models_dir"], "b", "models_dir = 'b' # c"],
    ["", ["server", "port"], 1, "[server]\nport = 1\n"],
    ["", ["models_dir"], "~/m", 'models_dir = "~/m"\n'],
    ["# only a comment\n", ["backend", "mmap"], false, "# only a comment\n\n[backend]\nmmap = false\n"],
  ];
  for (const [before, path, value, after] of table)
    assert.equal(setInToml(before, path, value, "f.toml"), after, before);
});

test("setInToml refuses to turn a value into a table, and reports invalid TOML with its line", () => {
  assert.throws(
    () => setInToml("cache = 1\n", ["cache", "persist_cache"], true, "f.toml"),
    (error: unknown) => {
      assert.ok(error instanceof ConfigInvalid);
      assert.match(error.message, /Cannot set cache\.persist_cache in f\.toml: cache there is a value, not a table/);
      return true;
    },
  );
  assert.throws(
    () => setInToml("a = 1\nb = = 2\n", ["models_dir"], "x", "f.toml"),
    /f\.toml is not valid TOML at line 2/,
  );
});

test("unsetInToml removes the key with its own trailing comment, or says it was absent", () => {
  const text = '# head\n[server]\nport = 1 # mine\nhost = "h"\n';
  assert.equal(unsetInToml(text, ["server", "port"], "f.toml"), '# head\n[server]\nhost = "h"\n');
  assert.equal(unsetInToml(text, ["server", "max_queue"], "f.toml"), undefined);
  assert.equal(unsetInToml(text, ["cache", "persist_cache"], "f.toml"), undefined);
  assert.equal(unsetInToml("", ["server", "port"], "f.toml"), undefined);
});
