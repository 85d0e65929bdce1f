/** `createLogger`: pino-pretty lines on a terminal, one JSON object per line anywhere else (files, pipes, collectors). */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { createLogger } from "../../src/runtime/index.js";

/** A destination that records what is written; `isTTY` set as a terminal stream (process.stderr on a tty) sets it. */
function destination(isTTY: boolean): { stream: Writable & { isTTY?: boolean }; text: () => string } {
  let text = "";
  const stream: Writable & { isTTY?: boolean } = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  if (isTTY) stream.isTTY = true;
  return { stream, text: () => text };
}

/** An SGR (colour) escape sequence; built from a string because lint rightly flags control characters in literals. */
const ANSI = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`);

describe("createLogger", () => {
  it("writes one JSON object per line when the destination is not a terminal", () => {
    const out = destination(false);
    const logger = createLogger({ destination: out.stream });
    logger.info({ model: "tiny.gguf", ms: 12 }, "model loaded");
    logger.warn("low memory");
    logger.debug("not at info level");
    const lines = out.text().trimEnd().split("\n");
    assert.equal(lines.length, 2);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual({ ...first, time: 0 }, { level: 30, time: 0, model: "tiny.gguf", ms: 12, msg: "model loaded" });
    assert.equal(typeof first?.time, "number");
    assert.equal(second?.level, 40);
    assert.equal(second?.msg, "low memory");
    assert.doesNotMatch(out.text(), ANSI);
  });

  it("writes coloured human-readable lines on a terminal, one per entry, without pid or hostname", () => {
    const out = destination(true);
    const logger = createLogger({ destination: out.stream, level: "debug" });
    logger.info({ model: "tiny.gguf" }, "model loaded");
    logger.debug("details");
    const text = out.text();
    assert.match(text, ANSI);
    const lines = text.replace(new RegExp(ANSI.source, "g"), "").trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? "", /^\[[\d:.]+\] INFO: model loaded \{"model":"tiny\.gguf"\}$/);
    assert.match(lines[1] ?? "", /^\[[\d:.]+\] DEBUG: details$/);
    assert.throws(() => JSON.parse(lines[0] ?? ""), SyntaxError);
    assert.doesNotMatch(text, /pid|hostname/);
  });

  it("`pretty` overrides the terminal check: pretty without colours into a pipe, JSON on a terminal", () => {
    const pipe = destination(false);
    createLogger({ destination: pipe.stream, pretty: true }).info("hello");
    assert.match(pipe.text(), /^\[[\d:.]+\] INFO: hello\n$/);

    const terminal = destination(true);
    createLogger({ destination: terminal.stream, pretty: false }).info("hello");
    assert.equal((JSON.parse(terminal.text()) as { msg: string }).msg, "hello");
  });
});
