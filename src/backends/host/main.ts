/**
 * The model host: a child process that runs one model with the in-process backend of its format (llama.cpp for GGUF)
 * and answers the protocol of ./protocol.ts on file descriptor 3. Started by ./host.ts, never by hand.
 *
 * It exits as soon as its channel to Inferno ends — also when Inferno was killed with SIGKILL and could not say so —,
 * so no host outlives the server. SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and the
 * server, not the host, decides when a model stops (after the final save).
 */
import { Socket } from "node:net";
import type { BackendConfig } from "../../config/schema.js";
import { Disposed } from "../../errors/index.js";
import type { ModelFormat } from "../../models/types.js";
import type { LlamaBackend } from "../llama.js";
import type { OnnxBackend } from "../onnx.js";
import type { Backend, GenerationOptions, LoadedModel } from "../types.js";
import {
  type CallMethod,
  encodeFrame,
  type FromHost,
  FrameReader,
  HOST_FD,
  parseToHost,
  type ToHost,
  toWireError,
} from "./protocol.js";
import { Coalesced, PROGRESS_INTERVAL_MS, STREAM_INTERVAL_MS } from "./coalesced.js";
import { warmUp } from "./warm-up.js";

const channel = new Socket({ fd: HOST_FD, readable: true, writable: true });
const reader = new FrameReader();
/** Requests in flight by id: aborting one fires its controller. */
const inFlight = new Map<number, AbortController>();
let model: LoadedModel | null = null;

process.on("SIGINT", () => {});
const leave = () => process.exit(0);
channel.on("end", leave);
channel.on("close", leave);
channel.on("error", leave);
// Also when the pipe's end is not noticed (a busy loop): a new parent means Inferno is gone.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) leave();
}, 250).unref();

/**
 * The backends, imported after the channel is watched: importing node-llama-cpp takes seconds on a busy machine, and
 * a host whose parent died meanwhile must not wait for it. Messages wait for it, in order.
 */
const runtimes: Promise<{ llama: LlamaBackend; onnx: OnnxBackend; backends: Record<ModelFormat, Backend> }> =
  Promise.all([import("../llama.js"), import("../onnx.js")]).then(
    ([{ LlamaBackend: Llama }, { OnnxBackend: Onnx }]) => {
      const llama = new Llama();
      const onnx = new Onnx();
      return { llama, onnx, backends: { gguf: llama, onnx } };
    },
  );

/** Sends messages in one write (one wake-up of Inferno). */
function send(...messages: FromHost[]): void {
  channel.write(
    messages.length === 1 ? encodeFrame(messages[0] as FromHost) : Buffer.concat(messages.map(encodeFrame)),
  );
}

channel.on("data", (chunk: Buffer) => {
  let values: unknown[];
  try {
    values = reader.push(chunk);
  } catch {
    // Inferno itself sent something unreadable: nothing sensible can follow.
    process.exit(70);
  }
  for (const value of values) {
    let message: ToHost;
    try {
      message = parseToHost(value);
    } catch {
      process.exit(70);
    }
    // Answered here, not in `handle`: that waits for the runtime's import, and the watchdog asks about this process.
    if (message.type === "ping") send({ type: "pong" });
    else void handle(message);
  }
});

async function handle(message: Exclude<ToHost, { type: "ping" }>): Promise<void> {
  const { llama, onnx } = await runtimes;
  switch (message.type) {
    case "init":
      try {
        if (message.format === "gguf") {
          await llama.ready({ gpu: message.gpu });
          await warmUp(llama, message.gpu);
        } else await onnx.prepare();
        send({ type: "ready" });
      } catch (error) {
        send({ type: "error", id: null, error: toWireError(error) });
      }
      return;
    case "abort":
      inFlight.get(message.id)?.abort();
      return;
    case "memory":
      send({ type: "result", id: message.id, value: process.memoryUsage.rss() });
      return;
    case "dispose":
      for (const controller of inFlight.values()) controller.abort();
      await model?.dispose().catch(() => undefined);
      send({ type: "result", id: message.id, value: null });
      channel.end(leave);
      return;
    case "load":
      return respond(message.id, (signal, stream) => load(message.id, message, signal, stream));
    case "call":
      return respond(message.id, (signal, stream) =>
        call(message.id, message.method, message.args, message.stream ? stream : null, signal),
      );
  }
}

/** What a request sends while it runs: its text and load progress, each coalesced (see coalesced.ts). */
class RequestStream {
  readonly text: Coalesced<string>;
  readonly progress: Coalesced<number>;

  constructor(private readonly id: number) {
    this.text = new Coalesced(
      (held, next) => held + next,
      (text) => send({ type: "text", id, text }),
      STREAM_INTERVAL_MS,
    );
    this.progress = new Coalesced(
      (_, next) => next,
      (fraction) => send({ type: "progress", id, fraction }),
      PROGRESS_INTERVAL_MS,
    );
  }

  /** What is held back, as messages; nothing is sent for it later. */
  held(): FromHost[] {
    const { id } = this;
    const text = this.text.take();
    const fraction = this.progress.take();
    return [
      ...(text === undefined ? [] : [{ type: "text", id, text } as const]),
      ...(fraction === undefined ? [] : [{ type: "progress", id, fraction } as const]),
    ];
  }
}

/**
 * Runs a request with its own abort controller and stream, and sends its answer (result or error) in one write with
 * what the stream still held: the last pieces and the end of a request cost one wake-up of Inferno, not two.
 */
async function respond(
  id: number,
  work: (signal: AbortSignal, stream: RequestStream) => Promise<FromHost>,
): Promise<void> {
  const controller = new AbortController();
  const stream = new RequestStream(id);
  inFlight.set(id, controller);
  let answer: FromHost;
  try {
    answer = await work(controller.signal, stream);
  } catch (error) {
    answer = { type: "error", id, error: toWireError(error) };
  } finally {
    inFlight.delete(id);
  }
  send(...stream.held(), answer);
}

async function load(
  id: number,
  message: Extract<ToHost, { type: "load" }>,
  signal: AbortSignal,
  stream: RequestStream,
): Promise<FromHost> {
  const { backends } = await runtimes;
  const loaded = await backends[message.descriptor.format].load(message.descriptor, {
    backend: message.config as BackendConfig,
    signal,
    onProgress: stream.progress.push,
    ...(message.promptStore ? { promptStore: message.promptStore } : {}),
  });
  model = loaded;
  if (loaded.kind === "text") loaded.onPromptStore?.((event) => send({ type: "prompt", event }));
  return { type: "loaded", id, kind: loaded.kind, memoryBytes: loaded.memoryBytes };
}

async function call(
  id: number,
  method: CallMethod,
  args: unknown[],
  stream: RequestStream | null,
  signal: AbortSignal,
): Promise<FromHost> {
  if (!model) throw new Disposed("the model host has no model loaded");
  const m = model as LoadedModel & Record<CallMethod, (...a: unknown[]) => Promise<unknown>>;
  if (typeof m[method] !== "function") throw new Disposed(`the model host's model has no ${method}`);
  if (method === "complete" || method === "chat") {
    const options: GenerationOptions = { ...(args[1] as GenerationOptions | undefined), signal };
    if (stream) options.onText = stream.text.push;
    return { type: "result", id, value: await m[method](args[0], options) };
  }
  // warm(signal); embed(inputs, signal, options) and run(inputs, signal): the signal is this side's; tokenize takes none.
  if (method === "warm") return { type: "result", id, value: await m.warm(signal) };
  const rest = method === "tokenize" ? [] : method === "embed" ? [signal, args[1]] : [signal];
  return { type: "result", id, value: await m[method](args[0], ...rest) };
}
