/** A forward's peer address, taken apart once per peer: the same request Node would make from `new URL(base + path)`. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { urlToHttpOptions } from "node:url";
import { peerTarget } from "../../src/server/fleet.js";

test("peerTarget takes a peer's URL apart as Node's URL handling would, the request's path appended", () => {
  const bases = [
    "http://127.0.0.1:8080",
    "http://10.0.0.5:11434/",
    "https://node-b.internal",
    "http://[::1]:9000",
    "http://inferno:s%3Acret@node-c:80/prefix",
    "http://node-d:8081/prefix/",
  ];
  for (const base of bases) {
    for (const path of ["/v1/chat/completions", "/api/generate?stream=false"]) {
      const node = urlToHttpOptions(new URL(`${base}${path}`));
      const target = peerTarget(base, path);
      const what = `${base} + ${path}`;
      assert.equal(target.https, node.protocol === "https:", what);
      assert.equal(target.hostname, node.hostname, what);
      assert.equal(target.port, node.port === undefined ? "" : String(node.port), what);
      assert.equal(target.path, node.path, what);
      assert.equal(target.auth, node.auth ?? null, what);
      // Asked again (parsed once, kept): the same answer.
      assert.deepEqual(peerTarget(base, path), target, what);
    }
  }
});
