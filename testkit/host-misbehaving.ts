/**
 * A model host that breaks the protocol, for tests (HostedBackend's `entry` option). Its runtime "starts" at once (or
 * after `INFERNO_TEST_HOST_START_MS` milliseconds, a slow start); then, by the model file's name:
 * - `silent…`: never answers a load (the load bound must kill it);
 * - `garbage…`: answers the load, then answers the first call with bytes that decode to no message;
 * - `dies…`: dies of SIGSEGV while loading.
 * Asked to dispose, it exits. With `INFERNO_TEST_HOST_START_SIGNAL` set, it ends itself by that signal as it starts,
 * as a pending Ctrl-C does a host that got it between its fork and its own process group.
 */
import { Socket } from "node:net";
import { encodeFrame, type FromHost, FrameReader, HOST_FD, parseToHost } from "../src/backends/host/protocol.js";

const startSignal = process.env.INFERNO_TEST_HOST_START_SIGNAL as NodeJS.Signals | undefined;
if (startSignal) process.kill(process.pid, startSignal);
const channel = new Socket({ fd: HOST_FD, readable: true, writable: true });
const reader = new FrameReader();
let model = "";
const send = (message: FromHost) => channel.write(encodeFrame(message));
channel.on("end", () => process.exit(0));
channel.on("data", (chunk: Buffer) => {
  for (const value of reader.push(chunk)) {
    const message = parseToHost(value);
    if (message.type === "dispose") process.exit(0);
    if (message.type === "init")
      setTimeout(() => send({ type: "ready" }), Number(process.env.INFERNO_TEST_HOST_START_MS ?? 0));
    if (message.type === "load") {
      model = message.descriptor.name;
      if (model.startsWith("dies")) process.kill(process.pid, "SIGSEGV");
      if (!model.startsWith("silent")) send({ type: "loaded", id: message.id, kind: "text", memoryBytes: 1 });
    }
    if (message.type === "call" && model.startsWith("garbage")) {
      // A frame of 12 bytes holding a message in neither format (JSON, v8's).
      channel.write(Buffer.concat([Buffer.from([0, 0, 0, 12]), Buffer.from("not a value!")]));
    }
  }
});
