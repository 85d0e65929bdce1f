/**
 * A model session: one request's hold on a model. It takes a queue slot, then a cache lease, and gives both back
 * exactly once when the request stops using the model — at the end of the response, or of the stream, or when the
 * client goes away (its signal aborts the generation, which then ends and releases).
 */
import type { ServerResponse } from "node:http";
import {
  FORMAT_KIND,
  type FinishReason,
  type GenerationResult,
  type LoadedModel,
  type TextModel,
} from "../backends/types.js";
import type { Lease } from "../cache/types.js";
import type { ModelDescriptor } from "../models/types.js";
import { Aborted, CacheBusy, ModelCapabilityMissing, ShuttingDown } from "../errors/index.js";
import {
  type AppContext,
  type AppDeps,
  isWarmUpRequest,
  nodeResponse,
  RESPONSE_ALREADY_SENT,
  requestSignal,
} from "./context.js";
import { errorBody, type MappedError, mapError } from "./errors.js";
import { type KeepAlive, requestKeepAlive } from "./keep-alive.js";

export interface ModelSession {
  readonly lease: Lease;
  /** Aborts when the client disconnects or shutdown gives up waiting. */
  readonly signal: AbortSignal;
  /** Releases the lease and the queue slot (idempotent). */
  end(): void;
}

/**
 * Waits for a queue slot, then leases the model (loading it if needed). `task` names what the request does with it:
 * a model that cannot (a tensor model asked for chat) is refused before anything is loaded or evicted.
 */
export async function openSession(
  c: AppContext,
  deps: AppDeps,
  modelName: string,
  keepAlive: KeepAlive | undefined,
  task: string,
): Promise<ModelSession> {
  if (deps.lifecycle.isDraining) throw new ShuttingDown("the server is shutting down and takes no new requests");
  const signal = requestSignal(c, deps.lifecycle);
  const slot = await deps.queue.enter(signal);
  let lease: Lease;
  try {
    lease = isWarmUpRequest(c, deps)
      ? await warmUpLease(deps, modelName)
      : await deps.runtime.cache.acquire(modelName, {
          keepAlive: requestKeepAlive(keepAlive, deps.runtime.config.server),
          signal,
          capability: "text",
          task,
        });
  } catch (error) {
    slot.release();
    throw error;
  }
  let ended = false;
  return {
    lease,
    signal,
    end() {
      if (ended) return;
      ended = true;
      lease.release();
      slot.release();
    },
  };
}

/** A warm-up request's lease: on the model as it is loaded, counted nowhere; it never loads one. */
async function warmUpLease(deps: AppDeps, modelName: string): Promise<Lease> {
  const lease = await deps.runtime.cache.acquireLoaded(modelName);
  if (!lease) throw new CacheBusy(`warm-up request: model ${modelName} is not loaded`);
  return lease;
}

/**
 * Refuses a tensor (ONNX) model for a text task by its file, before any queue slot, load or eviction: what a text
 * route checks first. Resolves the name (so an unknown name is a 404 here too).
 */
export async function requireTextModel(deps: AppDeps, modelName: string, task: string): Promise<ModelDescriptor> {
  const descriptor = await deps.runtime.models.resolve(modelName);
  if (FORMAT_KIND[descriptor.format] === "text") return descriptor;
  throw new ModelCapabilityMissing(
    `model ${modelName} is an ${descriptor.format.toUpperCase()} tensor model and cannot do ${task}`,
    { details: { param: "model" } },
  );
}

/** The session's model as a text model, or ModelCapabilityMissing (ending the session) for tensor models. */
export function textModelOf(session: ModelSession, task: string): TextModel {
  const model: LoadedModel = session.lease.model;
  if (model.kind === "text") return model;
  session.end();
  throw new ModelCapabilityMissing(
    `model ${session.lease.descriptor.name} is an ${session.lease.descriptor.format.toUpperCase()} tensor model and cannot do ${task}`,
    { details: { param: "model" } },
  );
}

/** Runs a non-streaming use of the session's model and ends the session afterwards, also on failure. */
export async function within<T>(session: ModelSession, use: () => Promise<T>): Promise<T> {
  try {
    return await use();
  } finally {
    session.end();
  }
}

/**
 * A generation's end as clients may see it. Neither OpenAI nor Ollama has an "aborted" ending: a generation cut short
 * by the client leaving is never seen, and one cut short by shutdown is reported as an error (and counted) rather than
 * passed off as complete. Its prompt is counted for the prompt cache's statistics either way.
 */
export function completedReason(
  result: Pick<GenerationResult, "finishReason" | "usage">,
  session: ModelSession,
  deps: AppDeps,
): Exclude<FinishReason, "abort"> {
  deps.runtime.cache.recordPrompt(result.usage);
  const reason = result.finishReason;
  if (reason !== "abort") return reason;
  deps.metrics.generationAborted();
  throw new Aborted("generation aborted: the request was cancelled or the server is shutting down", {
    cause: session.signal.reason,
  });
}

/**
 * Sends JSON events in order from synchronous callbacks (token streaming). Nothing is awaited per event: the events of
 * one turn of the event loop are framed, joined and written as one chunk right after it (`setImmediate`), so a burst
 * of tokens costs one write and no event waits for a later tick than its own.
 */
export class EventWriter {
  private buffered: string[] = [];
  private scheduled = false;

  constructor(
    private readonly frame: (data: string) => string,
    private readonly write: (text: string) => void,
  ) {
    // The first write (possibly empty) also sends the response head, so a client sees the stream start at once.
    this.schedule();
  }

  send(data: unknown): void {
    this.buffered.push(this.frame(typeof data === "string" ? data : JSON.stringify(data)));
    this.schedule();
  }

  /** Writes what is buffered now (the stream's end calls it; otherwise the scheduled write does). */
  flush(): void {
    this.scheduled = false;
    const text = this.buffered.length === 1 ? (this.buffered[0] as string) : this.buffered.join("");
    this.buffered = [];
    this.write(text);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      if (this.scheduled) this.flush();
    });
  }
}

/** How a streamed response frames its events: server-sent events for OpenAI's clients, JSON lines for Ollama's. */
export interface StreamFraming {
  readonly headers: Readonly<Record<string, string>>;
  /** One event's text as it goes on the wire. */
  frame(data: string): string;
  /** The event that reports a failure after the headers went out. */
  error(mapped: MappedError): unknown;
  /** The event that always ends the stream, if the protocol has one (`[DONE]`). */
  end?: string;
}

/** OpenAI: `data: {json}` events, a failure as an OpenAI error event, and `data: [DONE]` at the end. */
export const SSE_FRAMING: StreamFraming = {
  headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" },
  // A line break inside the data would end the field: each line becomes its own `data:` line, as the format requires.
  frame: (data) =>
    `data: ${data.includes("\n") || data.includes("\r") ? data.split(/\r\n|\r|\n/).join("\ndata: ") : data}\n\n`,
  error: (mapped) => errorBody(mapped, "openai"),
  end: "[DONE]",
};

/** Ollama: one JSON object per line (`application/x-ndjson`), a failure as `{"error": "message"}`. */
export const NDJSON_FRAMING: StreamFraming = {
  headers: { "content-type": "application/x-ndjson" },
  frame: (line) => `${line}\n`,
  error: (mapped) => errorBody(mapped, "ollama"),
};

/** Where a stream's text goes, and the Response the handler returns for it. */
interface StreamSink {
  response: Response;
  write(text: string): void;
  /** Ends the body; resolves once it is flushed or the client is gone (never rejects). */
  end(): Promise<void>;
}

/**
 * Under @hono/node-server the stream is written straight to the Node response (`c.env.outgoing`): no web stream, no
 * promise per chunk. The returned Response only tells the adapter the response is already being sent.
 */
function nodeSink(outgoing: ServerResponse, framing: StreamFraming): StreamSink {
  outgoing.writeHead(200, framing.headers);
  const gone = () => outgoing.destroyed || outgoing.writableEnded;
  return {
    response: RESPONSE_ALREADY_SENT,
    write: (text) => {
      if (gone()) return;
      if (text === "") {
        if (!outgoing.headersSent) outgoing.flushHeaders();
      } else outgoing.write(text);
    },
    end: () =>
      new Promise<void>((resolve) => {
        if (gone()) return resolve();
        outgoing.once("close", () => resolve());
        outgoing.end(() => resolve());
      }),
  };
}

/** Anywhere else (`app.fetch` called directly): a web ReadableStream body. */
function webSink(framing: StreamFraming): StreamSink {
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: () => void (open = false),
  });
  return {
    response: new Response(body, { headers: framing.headers }),
    write: (text) => {
      if (open && text !== "") controller.enqueue(encoder.encode(text));
    },
    end: async () => {
      if (open) controller.close();
      open = false;
    },
  };
}

function streamSink(c: AppContext, framing: StreamFraming): StreamSink {
  const outgoing = nodeResponse(c);
  return outgoing ? nodeSink(outgoing, framing) : webSink(framing);
}

/**
 * Answers with a stream of events produced by `produce` (server-sent events unless another framing is given), holding
 * the session until the stream ends. A failure after the headers went out is reported as an error event.
 */
export function streamSession(
  c: AppContext,
  deps: AppDeps,
  session: ModelSession,
  produce: (events: EventWriter) => Promise<void>,
  framing: StreamFraming = SSE_FRAMING,
): Response {
  let finished!: () => void;
  c.set("streamDone", new Promise<void>((resolve) => (finished = resolve)));
  const sink = streamSink(c, framing);
  void deps.lifecycle.track(async () => {
    const events = new EventWriter(framing.frame, sink.write);
    try {
      await produce(events);
    } catch (error) {
      const mapped = mapError(error, deps.paths);
      if (mapped.internal) deps.runtime.logger.error({ err: error }, "stream failed");
      events.send(framing.error(mapped));
    } finally {
      session.end();
      if (framing.end !== undefined) events.send(framing.end);
      events.flush();
      await sink.end();
      finished();
    }
  });
  return sink.response;
}
