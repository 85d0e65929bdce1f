/**
 * A model session: one request's hold on a model. It takes a queue slot, then a cache lease, and gives both back
 * exactly once when the request stops using the model — at the end of the response, or of the stream, or when the
 * client goes away (its signal aborts the generation, which then ends and releases).
 */
import { streamSSE } from "hono/streaming";
import type { LoadedModel, TextModel } from "../backends/types.js";
import type { Lease } from "../cache/types.js";
import { ModelCapabilityMissing, ShuttingDown } from "../errors/index.js";
import { type AppContext, type AppDeps, requestSignal } from "./context.js";
import { mapError } from "./errors.js";
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

/** Sends JSON events in order from synchronous callbacks (token streaming) and waits for them at the end. */
export class SseWriter {
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

/**
 * Answers with server-sent events produced by `produce`, holding the session until the stream ends. A failure after
 * the headers went out is reported as an OpenAI error event; the stream always ends with `data: [DONE]`.
 */
export function streamSession(
  c: AppContext,
  deps: AppDeps,
  session: ModelSession,
  produce: (events: SseWriter) => Promise<void>,
): Response {
  let finished!: () => void;
  c.set("streamDone", new Promise<void>((resolve) => (finished = resolve)));
  return streamSSE(c, (stream) =>
    deps.lifecycle.track(async () => {
      const events = new SseWriter((data) => stream.writeSSE({ data }));
      try {
        await produce(events);
      } catch (error) {
        const mapped = mapError(error);
        if (mapped.internal) deps.runtime.logger.error({ err: error }, "stream failed");
        events.send(mapped.body);
      } finally {
        session.end();
        events.send("[DONE]");
        await events.flush();
        finished();
      }
    }),
  );
}
