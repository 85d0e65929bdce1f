/**
 * Every error Inferno raises on purpose. Each class has a stable `code` (never renamed: scripts and clients match on
 * it), an HTTP `status` for the server's one error mapper, and an `exitCode` for the CLI's one exit-code mapper:
 * 2 for usage and configuration mistakes, 1 for runtime failures. A class is declared in one line by its code and how
 * it answers (`coded`, `mistake`).
 *
 * This module imports nothing, so every other folder may use it.
 */

export type ExitCode = 1 | 2;

export interface InfernoErrorOptions {
  cause?: unknown;
  /** Structured facts for `--json` output, logs and the HTTP error body (e.g. the candidates of an ambiguous name). */
  details?: Record<string, unknown>;
}

export abstract class InfernoError extends Error {
  abstract readonly code: string;
  /** The HTTP status the server answers with. */
  readonly status: number = 500;
  /** The process exit code the CLI ends with. */
  readonly exitCode: ExitCode = 1;
  /** The OpenAI error `type` the server reports. */
  readonly type: string = "server_error";
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: InfernoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options.details;
  }
}

/** How one kind of error answers where the base's defaults (status 500, exit code 1, `server_error`) do not fit. */
interface ErrorShape {
  status?: number;
  exitCode?: ExitCode;
  type?: string;
}

/** A mistake in what the user asked or configured: exit code 2, OpenAI type `invalid_request_error`. */
function mistake(status?: number): ErrorShape {
  return { ...(status === undefined ? {} : { status }), exitCode: 2, type: "invalid_request_error" };
}

/** What `coded` returns: the constructor of an InfernoError whose `code` is `Code`. */
type CodedErrorClass<Code extends string> = abstract new (
  message: string,
  options?: InfernoErrorOptions,
) => InfernoError & { readonly code: Code };

/**
 * The base of one error class: its stable `code` and how it answers. Each class below is one line,
 * `export class Name extends coded("code", shape) {}`, so its name, `instanceof` and `code` type stay its own.
 */
function coded<const Code extends string>(code: Code, shape: ErrorShape = {}): CodedErrorClass<Code> {
  abstract class Coded extends InfernoError {
    readonly code = code;
    override readonly status = shape.status ?? 500;
    override readonly exitCode = shape.exitCode ?? 1;
    override readonly type = shape.type ?? "server_error";
  }
  return Coded;
}

/** A command line that cannot be understood: unknown flag, missing argument, bad flag value. */
export class UsageError extends coded("usage_error", mistake(400)) {}

/** A configuration source (file, environment variable, flag) holds an unknown key or an ill-typed value. */
export class ConfigInvalid extends coded("config_invalid", mistake()) {}

/** A request body or parameter is not what the API expects. */
export class BadRequest extends coded("bad_request", mistake(400)) {}

export class Unauthorized extends coded("invalid_api_key", { status: 401, type: "authentication_error" }) {}

/**
 * No model by that name. `details.suggestions` lists close matches. Exit code 2: the name is what the user typed, like
 * an ambiguous or outside-the-models-dir name, so it is a usage mistake rather than a runtime failure.
 */
export class ModelNotFound extends coded("model_not_found", mistake(404)) {}

/** A name matches more than one model. `details.candidates` lists them. */
export class ModelAmbiguous extends coded("model_ambiguous", mistake(400)) {}

/** A name resolves outside the models directory and the configuration does not allow that. */
export class ModelOutsideModelsDir extends coded("model_outside_models_dir", mistake(403)) {}

/** A model file is not a valid GGUF/ONNX file (wrong magic, unsupported version, truncated, unreadable). */
export class ModelInvalid extends coded("model_invalid", { status: 422, type: "invalid_request_error" }) {}

/** The model cannot do what was asked (e.g. chat on an ONNX classifier, embeddings on a model without them). */
export class ModelCapabilityMissing extends coded("model_capability_missing", {
  status: 400,
  type: "invalid_request_error",
}) {}

/** The model can never fit within the cache's memory limit, even in an empty cache. */
export class ModelTooLarge extends coded("model_too_large", { status: 507 }) {}

/** The model is pinned (`always_warm` / `pinned = true`): clearing it needs `force`. */
export class ModelPinned extends coded("model_pinned", mistake(409)) {}

/** The backend failed to load the model. */
export class ModelLoadFailed extends coded("model_load_failed", { status: 500 }) {}

/** The model failed to load recently; loads are refused until the cooldown ends. `details.retry_after_seconds`. */
export class ModelLoadCooldown extends coded("model_load_cooldown", { status: 503 }) {}

/**
 * A model's runtime died by itself (its model host crashed, was killed or broke its protocol) while the request used
 * it. The model is unloaded and loads again on the next request: retry. `details.retry_after_seconds`.
 */
export class ModelCrashed extends coded("model_crashed", { status: 503 }) {}

/** A model host did not finish loading within the bound derived from the file size; it was killed. */
export class ModelLoadTimeout extends coded("model_load_timeout", { status: 504 }) {}

/** Every resident model is leased and a new one could not get room within the wait bound. */
export class CacheBusy extends coded("cache_busy", { status: 503 }) {}

/** Too many requests are waiting. `details.retry_after_seconds`. */
export class QueueFull extends coded("queue_full", { status: 503 }) {}

/**
 * A constrained answer (structured output, a forced tool call) that neither validates against its schema nor was cut
 * at the token limit: never sent as if it were valid. `details.reason` says what broke; `details.text` is the answer.
 */
export class OutputInvalid extends coded("output_invalid", { status: 502 }) {}

/** The operation was aborted (client went away, eviction, shutdown). */
export class Aborted extends coded("aborted", { status: 499 }) {}

/** A handle (model, cache, lease) was used after it was disposed or closed. */
export class Disposed extends coded("disposed", { status: 503 }) {}

/** The saved cache state cannot be decoded or is of an unknown format/version. */
export class StateCorrupt extends coded("state_corrupt") {}

/**
 * `cache advise` has no traffic to replay: the request log is off, empty, or spans too little time.
 * `details.reason`: `off`, `empty` or `too_short`.
 */
export class NoRequestLog extends coded("request_log_empty", { status: 409, type: "invalid_request_error" }) {}

/** The saved cache state is in use by another process (lock held). */
export class StateLocked extends coded("state_locked") {}

/**
 * A call to the state store (a file-system call, the lock, a whole save) did not finish in time: a stuck file system
 * (a hung network mount, say) fails the save instead of hanging it, or shutdown. `details.operation` names the call.
 */
export class StateTimeout extends coded("state_timeout") {}

/**
 * The cache state cannot be written where it lives: a read-only file system (`EROFS`), a full disk or quota (`ENOSPC`,
 * `EDQUOT`), or no permission (`EACCES`, `EPERM`). `details.cause_code` is the system's code; such a save fails at once
 * (no lock retries) and leaves the previous file as it was.
 */
export class StateUnwritable extends coded("state_unwritable") {}

/** A request to a running Inferno server failed (used by the CLI's live mode). */
export class ServerUnavailable extends coded("server_unavailable", { status: 502 }) {}

/**
 * A prompt, chat or embedding input longer than the loaded model's context can hold (with room for one generated
 * token), and the request did not ask for truncation. `details`: `param` (where), `prompt_tokens`, `limit_tokens`.
 * OpenAI's code for the same refusal.
 */
export class ContextLengthExceeded extends coded("context_length_exceeded", mistake(400)) {}

/** A request body is larger than the server accepts. `details.limit_bytes`. */
export class PayloadTooLarge extends coded("payload_too_large", mistake(413)) {}

/**
 * A request a browser could have been made to send: a `Host` the server does not answer to (DNS rebinding) or a
 * cross-origin `Origin` not listed (`server.allowed_hosts`, `server.allowed_origins`). `details.header`.
 */
export class Forbidden extends coded("forbidden", mistake(403)) {}

/** A request body whose `Content-Type` is not JSON, on a route that takes JSON. `details.content_type`. */
export class UnsupportedMediaType extends coded("unsupported_media_type", mistake(415)) {}

/** No HTTP route matches the method and path. */
export class RouteNotFound extends coded("not_found", mistake(404)) {}

/** A route Inferno answers on purpose without doing it (Ollama's pull, push, create, copy, delete): the message says why. */
export class NotImplemented extends coded("not_implemented", { status: 501, type: "invalid_request_error" }) {}

/** The server is shutting down and takes no new model requests. */
export class ShuttingDown extends coded("shutting_down", { status: 503 }) {}

/** The server could not listen on its address (in use, not permitted, unknown host). */
export class ServerListenFailed extends coded("listen_failed") {}

/**
 * A fleet's Redis did not answer in time or at all. The node goes on as a single node (the fleet is `degraded`);
 * callers inside the fleet layer catch it. `details.operation` names the call.
 */
export class FleetUnavailable extends coded("fleet_unavailable", { status: 503 }) {}

/**
 * The model failed to load on the fleet's nodes too often recently: no node loads it again until the oldest failure
 * expires. `details.failures` lists them (node and message); `details.retry_after_seconds`.
 */
export class FleetLoadRefused extends coded("fleet_load_refused", { status: 503 }) {}

/**
 * No live node of the fleet serves the model now, and one did moments ago (its node restarting, or lost): retry.
 * `details.retry_after_seconds`.
 */
export class FleetModelAway extends coded("fleet_model_away", { status: 503 }) {}

/** The process exit code for any thrown value: 2 for usage/config errors, 1 otherwise. */
export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof InfernoError ? error.exitCode : 1;
}

export function isInfernoError(error: unknown): error is InfernoError {
  return error instanceof InfernoError;
}

/** The message of any thrown value, for one-line reports. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
