/**
 * The one generation pipeline behind every HTTP dialect. A dialect (OpenAI chat and completions, Responses, Ollama's
 * generate and chat) parses its request into a `GenerationRequest` and a `Reply`; `generate` takes a session on the
 * model (queue slot + cache lease; the cache refuses a model that cannot do the task, before anything is loaded), runs
 * the turns, and hands the `Reply` one stream of events — a turn starts, a piece of text, done — which it renders as
 * server-sent events, JSON lines, or one JSON body.
 */
import { performance } from "node:perf_hooks";
import type {
  ChatMessage,
  ChatOptions,
  FinishReason,
  GenerationOptions,
  GenerationResult,
  TextModel,
} from "../backends/types.js";
import { Aborted } from "../errors/index.js";
import { boundedMaxTokens, type RequestLimits } from "./bounds.js";
import { type AppContext, type AppDeps, jsonResponse } from "./context.js";
import type { KeepAlive } from "./keep-alive.js";
import type { SamplingFields } from "./schemas.js";
import { type ModelSession, openSession, streamSession, type StreamFraming, within } from "./session.js";

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

/**
 * The request fields every generation shares, mapped to the backend's options; `maxTokens` is what the request asks,
 * capped here by `server.max_tokens_limit` (the backend caps it by the context). OpenAI's sampling fields and Ollama's
 * `options` share their names.
 */
export function generationOptions(
  fields: SamplingFields,
  maxTokens: number | null | undefined,
  limits: Pick<RequestLimits, "max_tokens_limit">,
): GenerationOptions {
  const options: GenerationOptions = {};
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
 * passed off as complete.
 */
function completedReason(result: GenerationResult, session: ModelSession, deps: AppDeps): Finished {
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

/** Answers a generation request: the session, the turns, and the reply as a stream or as one JSON body. */
export async function generate(
  c: AppContext,
  deps: AppDeps,
  request: GenerationRequest,
  reply: Reply,
): Promise<Response> {
  const started = performance.now();
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
