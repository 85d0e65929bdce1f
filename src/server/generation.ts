/**
 * The one generation pipeline behind every HTTP dialect. A dialect (OpenAI chat and completions, Responses, Ollama's
 * generate and chat) parses its request into a `GenerationRequest` and a `Reply`; `generate` takes a session on the
 * model, runs the turns, and hands the `Reply` one stream of events — a turn starts, a piece of text, done — which it
 * renders as server-sent events, JSON lines, or one JSON body. Embeddings take the same session (`withTextModel`).
 *
 * A session is one request's hold on a model. It takes a queue slot, then a cache lease (the cache refuses a model
 * that cannot do the task before anything is loaded), and gives both back exactly once when the request stops using
 * the model — at the end of the response, or of the stream, or when the client goes away (its signal aborts the
 * generation, which then ends and releases).
 */
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import {
  type ChatMessage,
  type ChatOptions,
  type FinishReason,
  type GenerationOptions,
  type GenerationResult,
  requireCapability,
  type TextModel,
} from "../backends/types.js";
import type { Lease } from "../cache/types.js";
import { Aborted, CacheBusy, ShuttingDown } from "../errors/index.js";
import { boundedMaxTokens, type RequestLimits, type SamplingFields } from "./schemas.js";
import {
  type AppContext,
  type AppDeps,
  corsHeaders,
  isWarmUpRequest,
  jsonResponse,
  nodeResponse,
  readJson,
  requestHeader,
  RESPONSE_ALREADY_SENT,
  requestSignal,
} from "./context.js";
import { errorBody, type MappedError, mapError } from "./errors.js";
import { clampKeepAlive, type KeepAlive } from "./keep-alive.js";

/** One generation: a chat through the model's template, or a plain completion of a prompt. */
export type Turn = ({ messages: ChatMessage[] } | { prompt: string }) & {
  /** The request field the prompt came from, named by a `ContextLengthExceeded` error. */
  promptParam: string;
};

/** A request to generate, whatever API it came in by. */
export interface GenerationRequest {
  /** The model's name as the cache resolves it. */
  model: string;
  keepAlive: KeepAlive | undefined;
  /** What the request does, as an error names it: "chat completions", "responses", "chat"… */
  task: string;
  stream: boolean;
  /** Generated one after another (a completions request's prompt list); usually one. */
  turns: Turn[];
  /** Sampling, limits, tools and output format, the same for every turn. */
  options: Omit<ChatOptions, "signal" | "onText" | "promptParam">;
}

/** A finished turn as clients may see it: never aborted (see `completedReason`). */
export interface Finished extends GenerationResult {
  finishReason: Exclude<FinishReason, "abort">;
}

/** When the request started, got its model (queue slot and load), saw its first text, and ended (`performance.now()`). */
export interface Timing {
  started: number;
  loaded: number;
  firstText: number | null;
  ended: number;
}

export interface Done {
  type: "done";
  /** One per turn, in order. */
  results: Finished[];
  timing: Timing;
}

/** What a generation reports, in order: per turn a start and its text; then done (or an error, which the framing reports). */
export type GenerationEvent = { type: "start"; turn: number } | { type: "text"; turn: number; text: string } | Done;

/** How a dialect answers one request: a stream of events, or one JSON body. */
export interface Reply {
  readonly framing: StreamFraming;
  /** Streamed: what to send for an event (any number of messages, possibly none). */
  event(event: GenerationEvent, send: (data: unknown) => void): void;
  /** Not streamed: the JSON body. */
  body(done: Done): unknown;
  /** The reply reports when the first text came also when not streamed (Ollama's timings). */
  readonly timesFirstText?: boolean;
}

/** A parsed request: what to generate, and how this API answers it. */
export interface Parsed {
  request: GenerationRequest;
  reply: Reply;
}

/**
 * An API's way of asking for a generation: its request body parsed and checked (bad input is a 400 before any model
 * is used) into the one `GenerationRequest`, with the `Reply` that renders the events in the API's own format.
 */
export type Dialect = (body: unknown, deps: AppDeps) => Parsed;

/** A dialect's route: parse the body, then the one pipeline. */
export function dialectRoute(deps: AppDeps, dialect: Dialect): (c: AppContext) => Promise<Response> {
  return async (c) => {
    const { request, reply } = dialect(await readJson(c), deps);
    return generate(c, deps, request, reply);
  };
}

/**
 * The request fields every generation shares, mapped to the backend's options; `maxTokens` is what the request asks,
 * capped here by `server.max_tokens_limit` (the backend caps it by the context). OpenAI's sampling fields and Ollama's
 * `options` share their names. `promptCache` is `cache.prompt_cache`: off, no request reuses a prompt prefix; on, a
 * request may still ask `cache_prompt: false`.
 */
export function generationOptions(
  fields: SamplingFields,
  maxTokens: number | null | undefined,
  limits: Pick<RequestLimits, "max_tokens_limit">,
  promptCache: boolean,
): GenerationOptions {
  const options: GenerationOptions = {};
  if (!promptCache || fields.cache_prompt === false) options.cachePrompt = false;
  const bounded = boundedMaxTokens(maxTokens, limits);
  if (bounded !== undefined) options.maxTokens = bounded;
  if (fields.truncate_prompt_tokens != null) options.truncatePromptTokens = fields.truncate_prompt_tokens;
  if (fields.temperature != null) options.temperature = fields.temperature;
  if (fields.top_p != null) options.topP = fields.top_p;
  if (fields.top_k != null) options.topK = fields.top_k;
  if (fields.min_p != null) options.minP = fields.min_p;
  if (fields.frequency_penalty != null) options.frequencyPenalty = fields.frequency_penalty;
  if (fields.presence_penalty != null) options.presencePenalty = fields.presence_penalty;
  if (fields.logit_bias != null) options.logitBias = fields.logit_bias;
  if (fields.seed != null) options.seed = fields.seed;
  if (fields.stop != null) options.stop = typeof fields.stop === "string" ? [fields.stop] : fields.stop;
  return options;
}

/**
 * A generation's end as clients may see it. Neither OpenAI nor Ollama has an "aborted" ending: a generation cut short
 * by the client leaving is never seen, and one cut short by shutdown is reported as an error (and counted) rather than
 * passed off as complete. Its prompt is counted for the prompt cache's statistics either way.
 */
function completedReason(result: GenerationResult, session: ModelSession, deps: AppDeps): Finished {
  if (!session.warmUp) deps.runtime.cache.recordPrompt(result.usage);
  if (result.finishReason !== "abort") return result as Finished;
  deps.metrics.generationAborted();
  throw new Aborted("generation aborted: the request was cancelled or the server is shutting down", {
    cause: session.signal.reason,
  });
}

/** Runs the turns in order, reporting each start and piece of text to `emit` (when given). */
async function runTurns(
  deps: AppDeps,
  session: ModelSession,
  request: GenerationRequest,
  timing: Timing,
  emit: ((event: GenerationEvent) => void) | null,
): Promise<Done> {
  // The cache leased a text model: it refuses other kinds for this request's capability before any load.
  const model = session.lease.model as TextModel;
  const results: GenerationResult[] = [];
  for (const [index, turn] of request.turns.entries()) {
    emit?.({ type: "start", turn: index });
    const options: ChatOptions = { ...request.options, signal: session.signal, promptParam: turn.promptParam };
    if (emit) {
      options.onText = (text) => {
        timing.firstText ??= performance.now();
        emit({ type: "text", turn: index, text });
      };
    }
    results.push(
      await ("messages" in turn ? model.chat(turn.messages, options) : model.complete(turn.prompt, options)),
    );
  }
  const finished = results.map((result) => completedReason(result, session, deps));
  timing.ended = performance.now();
  return { type: "done", results: finished, timing };
}

/**
 * A request's prompt-cache scope: with `cache.prompt_cache_per_key`, its API key's (the bearer token, hashed; no key
 * is a scope of its own), so no caller reuses a prefix evaluated for another; otherwise none (shared).
 */
function promptScope(c: AppContext, deps: AppDeps): string | undefined {
  if (!deps.runtime.config.cache.prompt_cache_per_key) return undefined;
  const token = /^Bearer\s+(.+)$/i.exec(requestHeader(c, "authorization") ?? "")?.[1] ?? "";
  return `key:${createHash("sha256").update(token).digest("hex").slice(0, 32)}`;
}

/** Answers a generation request: the session, the turns, and the reply as a stream or as one JSON body. */
export async function generate(
  c: AppContext,
  deps: AppDeps,
  parsed: GenerationRequest,
  reply: Reply,
): Promise<Response> {
  const started = performance.now();
  const scope = promptScope(c, deps);
  const request = scope === undefined ? parsed : { ...parsed, options: { ...parsed.options, promptScope: scope } };
  const session = await openSession(c, deps, request.model, request.keepAlive, request.task);
  const timing: Timing = { started, loaded: performance.now(), firstText: null, ended: started };
  if (!request.stream) {
    const watch = reply.timesFirstText ? () => undefined : null;
    const done = await within(session, () => runTurns(deps, session, request, timing, watch));
    return jsonResponse(c, reply.body(done));
  }
  return streamSession(
    c,
    deps,
    session,
    async (events) => {
      const send = (data: unknown) => events.send(data);
      const done = await runTurns(deps, session, request, timing, (event) => reply.event(event, send));
      reply.event(done, send);
    },
    reply.framing,
  );
}

/**
 * A model used for something other than generating (embeddings): the same session — queue slot, lease, the cache's
 * capability check — held while `use` runs.
 */
export async function withTextModel<T>(
  c: AppContext,
  deps: AppDeps,
  request: Pick<GenerationRequest, "model" | "keepAlive" | "task">,
  use: (model: TextModel, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const session = await openSession(c, deps, request.model, request.keepAlive, request.task);
  return within(session, () => use(session.lease.model as TextModel, session.signal));
}

export interface ModelSession {
  readonly lease: Lease;
  /** Aborts when the client disconnects or shutdown gives up waiting. */
  readonly signal: AbortSignal;
  /** The server's own warm-up request: counted nowhere, not even in the prompt cache's figures. */
  readonly warmUp: boolean;
  /** Releases the lease and the queue slot (idempotent). */
  end(): void;
}

/**
 * Waits for a queue slot, then leases the model (loading it if needed). `task` names what the request does with it:
 * a model that cannot (a tensor model asked for chat) is refused by the cache before anything is loaded or evicted.
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
  const warmUp = isWarmUpRequest(c, deps);
  try {
    lease = warmUp
      ? await warmUpLease(deps, modelName, task)
      : await deps.runtime.cache.acquire(modelName, {
          // Most requests name none: no clamping to do.
          keepAlive: keepAlive && clampKeepAlive(keepAlive, deps.runtime.config.server),
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
    warmUp,
    end() {
      if (ended) return;
      ended = true;
      lease.release();
      slot.release();
    },
  };
}

/** A warm-up request's lease: on the model as it is loaded, counted nowhere; it never loads one. */
async function warmUpLease(deps: AppDeps, modelName: string, task: string): Promise<Lease> {
  const lease = await deps.runtime.cache.acquireLoaded(modelName);
  if (!lease) throw new CacheBusy(`warm-up request: model ${modelName} is not loaded`);
  try {
    requireCapability(lease.descriptor, "text", task);
  } catch (error) {
    lease.release();
    throw error;
  }
  return lease;
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
function nodeSink(outgoing: ServerResponse, headers: Readonly<Record<string, string>>): StreamSink {
  outgoing.writeHead(200, headers);
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
  return outgoing ? nodeSink(outgoing, { ...corsHeaders(c), ...framing.headers }) : webSink(framing);
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
