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

interface Runtimes {
  llama: LlamaBackend;
  onnx: OnnxBackend;
  backends: Record<ModelFormat, Backend>;
}

/**
 * The backends, imported after the channel is watched: importing node-llama-cpp takes seconds on a busy machine, and
 * a host whose parent died meanwhile must not wait for it. Messages wait for it, in order; once it is there
 * (`imported`), a message is handled in the turn it arrives — awaiting the settled promise would cost every request a
 * turn of the microtask queue on the hop's path (~0.04 ms measured, the host just woken).
 */
let imported: Runtimes | null = null;
const runtimes: Promise<Runtimes> = Promise.all([import("../llama.js"), import("../onnx.js")]).then(
  ([{ LlamaBackend: Llama }, { OnnxBackend: Onnx }]) => {
    const llama = new Llama();
    const onnx = new Onnx();
    imported = { llama, onnx, backends: { gguf: llama, onnx } };
    return imported;
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
    else if (imported) void handle(message, imported);
    else void runtimes.then((loaded) => handle(message, loaded));
  }
});

async function handle(message: Exclude<ToHost, { type: "ping" }>, { llama, onnx, backends }: Runtimes): Promise<void> {
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
      return respond(message.id, (signal, stream) => load(backends, message, signal, stream));
    case "call":
      return respond(message.id, (signal, stream) =>
        call(message.id, message.method, message.args, message.stream ? stream : null, signal),
      );
  }
}

/**
 * What a request sends while it runs: its text and load progress, each coalesced (see coalesced.ts), each made when
 * first used — most requests use neither (a call that is not streamed, a load sends no text).
 */
class RequestStream {
  private textStream: Coalesced<string> | undefined;
  private progressStream: Coalesced<number> | undefined;

  constructor(private readonly id: number) {}

  get text(): Coalesced<string> {
    const { id } = this;
    this.textStream ??= new Coalesced(
      (held, next) => held + next,
      (text) => send({ type: "text", id, text }),
      STREAM_INTERVAL_MS,
    );
    return this.textStream;
  }

  get progress(): Coalesced<number> {
    const { id } = this;
    this.progressStream ??= new Coalesced(
      (_, next) => next,
      (fraction) => send({ type: "progress", id, fraction }),
      PROGRESS_INTERVAL_MS,
    );
    return this.progressStream;
  }

  /** What is held back, as messages, followed by `answer`; nothing is sent for it later. */
  withHeld(answer: FromHost): FromHost[] {
    const { id } = this;
    const messages: FromHost[] = [];
    const text = this.textStream?.take();
    if (text !== undefined) messages.push({ type: "text", id, text });
    const fraction = this.progressStream?.take();
    if (fraction !== undefined) messages.push({ type: "progress", id, fraction });
    messages.push(answer);
    return messages;
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
  send(...stream.withHeld(answer));
}

async function load(
  backends: Runtimes["backends"],
  message: Extract<ToHost, { type: "load" }>,
  signal: AbortSignal,
  stream: RequestStream,
): Promise<FromHost> {
  const loaded = await backends[message.descriptor.format].load(message.descriptor, {
    backend: message.config as BackendConfig,
    signal,
    onProgress: stream.progress.push,
    ...(message.promptStore ? { promptStore: message.promptStore } : {}),
  });
  model = loaded;
  if (loaded.kind === "text") loaded.onPromptStore?.((event) => send({ type: "prompt", event }));
  return { type: "loaded", id: message.id, kind: loaded.kind, memoryBytes: loaded.memoryBytes };
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
