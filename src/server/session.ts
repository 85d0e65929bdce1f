/**
 * A model session: one request's hold on a model. It takes a queue slot, then a cache lease, and gives both back
 * exactly once when the request stops using the model — at the end of the response, or of the stream, or when the
 * client goes away (its signal aborts the generation, which then ends and releases).
 */
import { stream, streamSSE } from "hono/streaming";
import { FORMAT_KIND, type FinishReason, type LoadedModel, type TextModel } from "../backends/types.js";
import type { Lease } from "../cache/types.js";
import type { ModelDescriptor } from "../models/types.js";
import { Aborted, ModelCapabilityMissing, ShuttingDown } from "../errors/index.js";
import { type AppContext, type AppDeps, requestSignal } from "./context.js";
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
    lease = await deps.runtime.cache.acquire(modelName, {
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
 * passed off as complete.
 */
export function completedReason(reason: FinishReason, session: ModelSession, deps: AppDeps): Exclude<FinishReason, "abort"> {
  if (reason !== "abort") return reason;
  deps.metrics.generationAborted();
  throw new Aborted("generation aborted: the request was cancelled or the server is shutting down", {
    cause: session.signal.reason,
  });
}

/** Sends JSON events in order from synchronous callbacks (token streaming) and waits for them at the end. */
export class EventWriter {
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly write: (data: string) => Promise<void>) {}

  send(data: unknown): void {
    const text = typeof data === "string" ? data : JSON.stringify(data);
    this.pending = this.pending.then(() => this.write(text));
  }

  flush(): Promise<void> {
    return this.pending;
  }
}

/** How a streamed response frames its events: server-sent events for OpenAI's clients, JSON lines for Ollama's. */
export interface StreamFraming {
  /** Starts the streamed response; `run` writes each event's text through `write`. */
  respond(c: AppContext, run: (write: (data: string) => Promise<void>) => Promise<void>): Response;
  /** The event that reports a failure after the headers went out. */
  error(mapped: MappedError): unknown;
  /** The event that always ends the stream, if the protocol has one (`[DONE]`). */
  end?: string;
}

/** OpenAI: `data: {json}` events, a failure as an OpenAI error event, and `data: [DONE]` at the end. */
export const SSE_FRAMING: StreamFraming = {
  respond: (c, run) => streamSSE(c, (sse) => run((data) => sse.writeSSE({ data }))),
  error: (mapped) => errorBody(mapped, "openai"),
  end: "[DONE]",
};

/** Ollama: one JSON object per line (`application/x-ndjson`), a failure as `{"error": "message"}`. */
export const NDJSON_FRAMING: StreamFraming = {
  respond: (c, run) => {
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, (body) =>
      run(async (line) => {
        await body.write(`${line}\n`);
      }),
    );
  },
  error: (mapped) => errorBody(mapped, "ollama"),
};

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
  return framing.respond(c, (write) =>
    deps.lifecycle.track(async () => {
      const events = new EventWriter(write);
      try {
        await produce(events);
      } catch (error) {
        const mapped = mapError(error, deps.paths);
        if (mapped.internal) deps.runtime.logger.error({ err: error }, "stream failed");
        events.send(framing.error(mapped));
      } finally {
        session.end();
        if (framing.end !== undefined) events.send(framing.end);
        await events.flush();
        finished();
      }
    }),
  );
}
