/**
 * A model host's coalesced stream (text, load progress): the first update goes when the event loop turns, later ones at
 * most one message per interval, and what is held back goes with the answer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Coalesced } from "../../src/backends/host/coalesced.js";

test("text closer than the interval goes as one message; the first and an isolated piece go when the loop turns", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setImmediate", "Date"], now: 1000 });
  const sent: string[] = [];
  const text = new Coalesced<string>(
    (held, next) => held + next,
    (value) => sent.push(value),
    4,
    () => Date.now(),
  );

  text.push("a");
  text.push("b");
  assert.deepEqual(sent, [], "nothing is sent inside the tick the pieces arrive in");
  t.mock.timers.tick(0);
  assert.deepEqual(sent, ["ab"], "the first pieces go when the event loop turns, together");

  t.mock.timers.tick(1);
  text.push("c");
  t.mock.timers.tick(1);
  text.push("d");
  t.mock.timers.tick(1);
  assert.deepEqual(sent, ["ab"], "pieces within the interval of the last message wait");
  t.mock.timers.tick(1);
  assert.deepEqual(sent, ["ab", "cd"], "and go as one message when it has passed");

  t.mock.timers.tick(10);
  text.push("e");
  t.mock.timers.tick(0);
  assert.deepEqual(sent, ["ab", "cd", "e"], "a piece after a pause goes at once");

  t.mock.timers.tick(1);
  text.push("f");
  assert.equal(text.take(), "f", "take() hands over what is held back");
  t.mock.timers.tick(10);
  assert.deepEqual(sent, ["ab", "cd", "e"], "and its scheduled send is dropped");
  assert.equal(text.take(), undefined);
});

test("progress keeps only the newest fraction", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setImmediate", "Date"], now: 0 });
  const sent: number[] = [];
  const progress = new Coalesced<number>(
    (_, next) => next,
    (value) => sent.push(value),
    4,
    () => Date.now(),
  );
  for (const fraction of [0.1, 0.2]) progress.push(fraction);
  t.mock.timers.tick(0);
  for (const fraction of [0.3, 0.4, 0.5]) progress.push(fraction);
  t.mock.timers.tick(4);
  progress.push(0.9);
  assert.deepEqual(sent, [0.2, 0.5]);
  assert.equal(progress.take(), 0.9);
});
