/** A model host's text stream: the first piece goes at once, later ones at most one per interval, the rest with the answer. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FromHost } from "../../src/backends/host/protocol.js";
import { TextStream } from "../../src/backends/host/text-stream.js";

test("pieces closer than the interval go as one message; the first and an isolated one go when the loop turns", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setImmediate", "Date"], now: 1000 });
  const sent: FromHost[] = [];
  const stream = new TextStream(7, (message) => sent.push(message), 4, () => Date.now());
  const texts = () => sent.map((m) => (m.type === "text" ? m.text : `<${m.type}>`));

  stream.onText("a");
  stream.onText("b");
  assert.deepEqual(texts(), [], "nothing is sent inside the tick the pieces arrive in");
  t.mock.timers.tick(0);
  assert.deepEqual(texts(), ["ab"], "the first pieces go when the event loop turns, together");

  t.mock.timers.tick(1);
  stream.onText("c");
  t.mock.timers.tick(1);
  stream.onText("d");
  t.mock.timers.tick(1);
  assert.deepEqual(texts(), ["ab"], "pieces within the interval of the last message wait");
  t.mock.timers.tick(1);
  assert.deepEqual(texts(), ["ab", "cd"], "and go as one message when it has passed");

  t.mock.timers.tick(10);
  stream.onText("e");
  t.mock.timers.tick(0);
  assert.deepEqual(texts(), ["ab", "cd", "e"], "a piece after a pause goes at once");

  t.mock.timers.tick(1);
  stream.onText("f");
  assert.deepEqual(stream.take(), [{ type: "text", id: 7, text: "f" }], "take() hands over what is held back");
  t.mock.timers.tick(10);
  assert.deepEqual(texts(), ["ab", "cd", "e"], "and its scheduled send is dropped");
  assert.deepEqual(stream.take(), []);
});
