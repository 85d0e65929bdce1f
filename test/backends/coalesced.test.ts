/**
 * A model host's coalesced stream (text, load progress): the first update goes when the event loop turns, later ones at
 * most one message per interval, and what is held back goes with the answer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Coalesced, STREAM_INTERVAL_MS } from "../../src/backends/host/coalesced.js";

/** Streamed text at `intervalMs` on the mocked clock, and the messages it sent. */
function textStream(intervalMs: number): { text: Coalesced<string>; sent: string[] } {
  const sent: string[] = [];
  const text = new Coalesced<string>(
    (held, next) => held + next,
    (value) => sent.push(value),
    intervalMs,
    () => Date.now(),
  );
  return { text, sent };
}

test("streamed text: a lone token goes at once, a burst of one turn as one message, tokens at a model's pace each as their own", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setImmediate", "Date"], now: 0 });
  const { text, sent } = textStream(STREAM_INTERVAL_MS);
  text.push("a");
  t.mock.timers.tick(0);
  assert.deepEqual(sent, ["a"], "a lone token goes when the event loop turns, not after an interval");

  t.mock.timers.tick(5);
  for (const piece of ["b", "c", "d"]) text.push(piece);
  t.mock.timers.tick(0);
  assert.deepEqual(sent, ["a", "bcd"], "pieces handed over within one turn go as one message");

  // A model at ~2 ms per token (the bench's medium model): no token waits for another.
  for (const piece of ["e", "f", "g", "h"]) {
    t.mock.timers.tick(2);
    text.push(piece);
    t.mock.timers.tick(0);
    assert.equal(sent.at(-1), piece, `${piece} went the moment it came`);
  }

  // Faster than the interval (a tiny model, several tokens per millisecond): merged, never held past the interval.
  sent.length = 0;
  t.mock.timers.tick(5);
  const clock = Date.now();
  for (let i = 0; i < 40; i++) {
    text.push(String(i % 10));
    t.mock.timers.tick(0.25);
  }
  t.mock.timers.tick(STREAM_INTERVAL_MS);
  assert.equal(sent.join(""), "0123456789".repeat(4), "every piece went, in order");
  assert.ok(sent.length <= Math.ceil((Date.now() - clock) / STREAM_INTERVAL_MS) + 1, `${sent.length} messages`);
  assert.ok(sent.length < 40 / 2, `${sent.length} messages for 40 pieces`);
});

test("text closer than the interval goes as one message; the first and an isolated piece go when the loop turns", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setImmediate", "Date"], now: 1000 });
  const { text, sent } = textStream(4);

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
