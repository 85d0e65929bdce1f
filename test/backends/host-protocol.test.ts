/**
 * The model host protocol's frames: what goes as JSON and what v8-serialized, that either decodes to what v8's own round
 * trip gives (the protocol's meaning of "crosses as it is"), and that a frame in neither format is a `ProtocolError`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { deserialize, serialize } from "node:v8";
import {
  encodeFrame,
  type FromHost,
  FrameReader,
  jsonExact,
  ProtocolError,
  type ToHost,
} from "../../src/backends/host/protocol.js";

const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;
const withExtra = Object.assign(["a"], { extra: 1 });
class Point {
  x = 1;
}

test("jsonExact: plain data is; whatever JSON would drop, change or refuse is not", () => {
  const table: Array<[string, unknown, boolean]> = [
    ["a string", "héllo \ud800 lone surrogate", true],
    ["finite numbers", [0, 1.5, -2, 1e21, Number.MAX_SAFE_INTEGER, 5e-324], true],
    ["booleans and null", [true, false, null], true],
    ["nested plain objects and arrays", { a: [{ b: "c" }, []], d: {} }, true],
    ["an object without a prototype", Object.assign(Object.create(null) as object, { a: 1 }), true],
    ["a field set to undefined", { a: undefined }, false],
    ["undefined in an array", [undefined], false],
    ["a hole in an array", [1, , 3], false], // eslint-disable-line no-sparse-arrays
    ["an array with another property", withExtra, false],
    ["NaN", NaN, false],
    ["Infinity", Infinity, false],
    ["-0", -0, false],
    ["a bigint", 1n, false],
    ["a typed array", new Float32Array([1, 2]), false],
    ["a Buffer", Buffer.from("x"), false],
    ["a Date", new Date(0), false],
    ["a Map", new Map(), false],
    ["a class instance", new Point(), false],
    ["an Error", new Error("x"), false],
    ["a cycle", cyclic, false],
    ["a function", () => 1, false],
    // Large messages go v8-serialized, the faster format for them.
    ["a text of 1,000 characters", "x".repeat(1000), true],
    ["a text of 2,000 characters", "x".repeat(2000), false],
    ["an array of 16 numbers", Array.from({ length: 16 }, (_, i) => i), true],
    ["an array of 17 numbers", Array.from({ length: 17 }, (_, i) => i), false],
  ];
  for (const [what, value, exact] of table) assert.equal(jsonExact(value), exact, what);
});

/** The frames' bodies, decoded by a reader fed the frames as one chunk. */
function roundTrip(messages: Array<ToHost | FromHost>): { values: unknown[]; firstBytes: number[] } {
  const frames = messages.map(encodeFrame);
  const values = new FrameReader().push(Buffer.concat(frames));
  return { values, firstBytes: frames.map((frame) => frame[4] as number) };
}

test("a generation's call, text and result go as JSON; other or large values v8-serialized; each decodes as v8's own round trip", () => {
  const call: ToHost = {
    type: "call",
    id: 7,
    method: "chat",
    args: [[{ role: "user", content: "Once upon a time" }], { maxTokens: 8, temperature: 0, promptParam: "messages" }],
    stream: false,
  };
  const result: FromHost = {
    type: "result",
    id: 7,
    value: { text: " the end", finishReason: "length", usage: { promptTokens: 12, completionTokens: 8 } },
  };
  const text: FromHost = { type: "text", id: 7, text: "piece ✓ \ud83d" };
  // Plain data however it was made: an own "__proto__" key (parsed from a request's JSON), no prototype.
  const unusual: FromHost = {
    type: "result",
    id: 10,
    value: [JSON.parse('{"__proto__":{"x":1}}'), Object.assign(Object.create(null) as object, { a: 1 })],
  };
  // What only v8's format keeps: a field set to undefined (a spread over defaults tells it from one absent), -0, NaN,
  // typed arrays and bigints (tensors), a cycle.
  const undefinedField: ToHost = { ...call, args: ["x", { temperature: undefined, topP: -0, minP: NaN }] };
  const tensors: FromHost = {
    type: "result",
    id: 8,
    value: { logits: new Float32Array([0.5, -1]), ids: new BigInt64Array([1n, 2n]), count: 3n, when: new Date(5) },
  };
  const looped: FromHost = { type: "result", id: 9, value: cyclic };
  // Plain but large: a prompt's tokens.
  const tokens: FromHost = { type: "result", id: 11, value: Array.from({ length: 1000 }, (_, i) => i) };
  const messages = [call, result, text, unusual, undefinedField, tensors, looped, tokens];
  const { values, firstBytes } = roundTrip(messages);
  assert.deepEqual(
    firstBytes.map((byte) => (byte === 0x7b ? "json" : byte === 0xff ? "v8" : byte)),
    ["json", "json", "json", "json", "v8", "v8", "v8", "v8"],
  );
  for (const [index, message] of messages.entries()) {
    assert.deepStrictEqual(values[index], deserialize(serialize(message)), `message ${index}`);
  }
  const options = (values[4] as { args: [string, Record<string, unknown>] }).args[1];
  assert.ok("temperature" in options && options.temperature === undefined, "a field set to undefined stays set");
  assert.ok(Object.is(options.topP, -0));
  assert.ok(Number.isNaN(options.minP));
});

test("frames split anywhere, or several in one chunk, decode in order", () => {
  const messages: FromHost[] = [
    { type: "text", id: 1, text: "a".repeat(300) },
    { type: "result", id: 1, value: { data: new Float64Array([1, 2, 3]) } },
    { type: "pong" },
  ];
  const bytes = Buffer.concat(messages.map(encodeFrame));
  for (const size of [1, 3, 7, 64]) {
    const reader = new FrameReader();
    const values: unknown[] = [];
    for (let start = 0; start < bytes.length; start += size)
      values.push(...reader.push(bytes.subarray(start, start + size)));
    assert.deepStrictEqual(values, messages, `chunks of ${size} bytes`);
  }
});

test("a body in neither format, or broken in either, is a ProtocolError", () => {
  const frame = (body: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
  const bodies = [
    Buffer.from("not a value!"),
    Buffer.from('{"type":"text",'),
    serialize({ type: "pong" }).subarray(0, 3),
  ];
  for (const body of bodies) {
    assert.throws(
      () => new FrameReader().push(frame(body)),
      (error: unknown) => error instanceof ProtocolError && /does not decode/.test(error.message),
      body.toString("latin1"),
    );
  }
});
