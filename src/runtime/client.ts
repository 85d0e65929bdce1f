/**
 * An HTTP client for a running `inferno serve`, used by the live CLI (`inferno cache …`, `inferno ps`). It speaks the
 * cache admin routes and turns the server's OpenAI error JSON back into Inferno's typed errors.
 */
import type { AdviceReport } from "../cache/sim/advise.js";
import type { CacheStats, LastSave, LoadedModelInfo, WarmupResult, WarmupStrategy } from "../cache/types.js";
import type { ServerConfig } from "../config/schema.js";
import type { FleetView } from "../server/ports.js";

export type { FleetView } from "../server/ports.js";
import type { FleetStats } from "./types.js";
import { dialHost } from "../config/address.js";
import {
  BadRequest,
  CacheBusy,
  type InfernoError,
  ModelAmbiguous,
  ModelLoadCooldown,
  ModelLoadFailed,
  ModelNotFound,
  ModelOutsideModelsDir,
  ModelPinned,
  ModelTooLarge,
  NoRequestLog,
  ServerUnavailable,
  Unauthorized,
  UsageError,
} from "../errors/index.js";

/** How long a probe waits for `/health` before deciding no server is running. */
const PROBE_TIMEOUT_MS = 1500;
/** Admin calls may load models (warm-up, load), which can take minutes for large files. */
const CALL_TIMEOUT_MS = 10 * 60 * 1000;

/** The server's address: `--server URL` when given, else `[server] host:port` (a wildcard bind is reached on loopback). */
export function serverUrl(server: Pick<ServerConfig, "host" | "port">, override?: string): string {
  if (override) {
    const url = override.includes("://") ? override : `http://${override}`;
    const refused = () =>
      new UsageError(`--server expects a URL like http://127.0.0.1:8080, found ${JSON.stringify(override)}`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw refused();
    }
    // Another scheme (ftp://, a typo such as htp://) would only ever be "no server running there".
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw refused();
    return parsed.toString().replace(/\/$/, "");
  }
  const host = dialHost(server.host);
  const literal = host.includes(":") ? `[${host}]` : host;
  return `http://${literal}:${server.port}`;
}

interface ErrorBody {
  error?: { message?: string; code?: string };
}

type ErrorClass = new (message: string, options?: { details?: Record<string, unknown> }) => InfernoError;

/** Server error codes the CLI maps back to their classes, so exit codes stay right (2 for usage mistakes). */
const ERRORS_BY_CODE: Record<string, ErrorClass> = {
  model_not_found: ModelNotFound,
  model_ambiguous: ModelAmbiguous,
  model_outside_models_dir: ModelOutsideModelsDir,
  model_pinned: ModelPinned,
  model_too_large: ModelTooLarge,
  model_load_failed: ModelLoadFailed,
  model_load_cooldown: ModelLoadCooldown,
  cache_busy: CacheBusy,
  request_log_empty: NoRequestLog,
  bad_request: BadRequest,
  usage_error: UsageError,
  invalid_api_key: Unauthorized,
};

/** A generation request as `inferno run` sends it: chat messages, or a raw prompt for a plain completion. */
export interface RemoteGeneration {
  model: string;
  messages?: Array<{ role: "system" | "user" | "assistant"; content: string }>;
  prompt?: string;
  max_tokens?: number;
  temperature?: number;
  seed?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  /** `-1`: the oldest turns (or the prompt's start) are cut so the rest fits the server's context. */
  truncate_prompt_tokens?: number;
}

export interface RemoteGenerationResult {
  text: string;
  finishReason: "stop" | "length" | "abort";
  usage: { promptTokens: number; completionTokens: number };
}

/** One event of `/v1/cache/events`: its `type`, ISO `time` and the event's fields (README, "Cache events"). */
export interface CacheEventJson {
  type: string;
  time: string;
  [field: string]: unknown;
}

export interface InfernoClientOptions {
  /** Sent as `Authorization: Bearer <key>` when non-empty. */
  apiKey?: string;
}

export class InfernoClient {
  constructor(
    readonly baseUrl: string,
    private readonly options: InfernoClientOptions = {},
  ) {}

  /** True when an Inferno server answers `/health` at the address (quickly; false on refusal or timeout). */
  async ping(): Promise<boolean> {
    try {
      const response = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      const body = (await response.json()) as { status?: unknown };
      return typeof body.status === "string";
    } catch {
      return false;
    }
  }

  /** The node's statistics; in a fleet, `fleet` holds the fleet's figures too. */
  stats(): Promise<CacheStats & { fleet?: FleetStats }> {
    return this.call("GET", "/v1/cache/stats");
  }

  /** `GET /v1/fleet`: the fleet the server belongs to (404 `not_found` when it runs alone). */
  fleet(): Promise<FleetView> {
    return this.call("GET", "/v1/fleet");
  }

  /** `GET /v1/cache/advise`: the request log replayed under other settings (in a fleet, also for `targetHitRate`). */
  advise(targetHitRate?: number): Promise<AdviceReport> {
    const query = targetHitRate === undefined ? "" : `?target_hit_rate=${encodeURIComponent(targetHitRate)}`;
    return this.call("GET", `/v1/cache/advise${query}`);
  }

  async loadedModels(): Promise<LoadedModelInfo[]> {
    return (await this.call<{ data: LoadedModelInfo[] }>("GET", "/v1/cache/models")).data;
  }

  save(): Promise<LastSave> {
    return this.call("POST", "/v1/cache/save", {});
  }

  async clear(options: { model?: string; force?: boolean; stats?: boolean } = {}): Promise<string[]> {
    return (await this.call<{ unloaded: string[] }>("POST", "/v1/cache/clear", options)).unloaded;
  }

  warmup(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupResult> {
    return this.call("POST", "/v1/cache/warmup", options);
  }

  /** Unloads a model; false when it was not loaded. A pinned model needs `force`. */
  async evict(name: string, options: { force?: boolean } = {}): Promise<boolean> {
    const query = options.force ? "?force=true" : "";
    return (await this.call<{ unloaded: boolean }>("DELETE", `/v1/cache/models/${encodeURIComponent(name)}${query}`))
      .unloaded;
  }

  /** Preloads a model; `keepAlive` as the API takes it (`"5m"`, seconds, -1). */
  load(name: string, keepAlive?: string | number): Promise<LoadedModelInfo> {
    const body = keepAlive === undefined ? {} : { keep_alive: keepAlive };
    return this.call("POST", `/v1/cache/models/${encodeURIComponent(name)}/load`, body);
  }

  /**
   * Generates through the server's OpenAI routes (`/v1/chat/completions` with messages, `/v1/completions` with a
   * prompt), streamed as server-sent events: `onText` gets each piece. An abort ends it early with what came so far.
   */
  async generate(
    request: RemoteGeneration,
    options: { onText?: (text: string) => void; signal?: AbortSignal } = {},
  ): Promise<RemoteGenerationResult> {
    const chat = request.messages !== undefined;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${chat ? "/v1/chat/completions" : "/v1/completions"}`, {
        method: "POST",
        headers: this.headers(true),
        body: JSON.stringify({ ...request, stream: true, stream_options: { include_usage: true } }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted)
        return { text: "", finishReason: "abort", usage: { promptTokens: 0, completionTokens: 0 } };
      throw new ServerUnavailable(`cannot reach the Inferno server at ${this.baseUrl}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!response.ok || !response.body) throw this.remoteError(response.status, await response.text());
    const result: RemoteGenerationResult = {
      text: "",
      finishReason: "stop",
      usage: { promptTokens: 0, completionTokens: 0 },
    };
    const onEvent = (data: string) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data) as {
        choices?: Array<{ delta?: { content?: string | null }; text?: string; finish_reason?: string | null }>;
        usage?: { prompt_tokens: number; completion_tokens: number } | null;
        error?: { message?: string; code?: string };
      };
      if (chunk.error) throw this.remoteError(500, JSON.stringify(chunk));
      const choice = chunk.choices?.[0];
      const piece = (chat ? choice?.delta?.content : choice?.text) ?? "";
      if (piece) {
        result.text += piece;
        options.onText?.(piece);
      }
      if (choice?.finish_reason === "length") result.finishReason = "length";
      if (chunk.usage)
        result.usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
    };
    try {
      for await (const { data } of sseEvents(response.body)) onEvent(data);
    } catch (error) {
      if (!options.signal?.aborted) throw error;
      result.finishReason = "abort";
    }
    return result;
  }

  private headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = {};
    if (json) headers["content-type"] = "application/json";
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    return headers;
  }

  /**
   * The server's cache events (`GET /v1/cache/events`), as they happen, each with its SSE id. Ends when the server ends
   * the stream (it shuts down, or dropped this client for not reading: resume by passing the last id as `lastEventId`)
   * or when `signal` aborts.
   */
  async *events(
    options: { lastEventId?: string; signal?: AbortSignal } = {},
  ): AsyncGenerator<{ id: string | null; event: CacheEventJson }> {
    const headers: Record<string, string> = { ...this.headers(false), Accept: "text/event-stream" };
    if (options.lastEventId !== undefined) headers["Last-Event-ID"] = options.lastEventId;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}/v1/cache/events`, {
        headers,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      throw new ServerUnavailable(`cannot reach the Inferno server at ${this.baseUrl}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!response.ok || !response.body) throw this.remoteError(response.status, await response.text());
    try {
      for await (const { id, data } of sseEvents(response.body))
        yield { id, event: JSON.parse(data) as CacheEventJson };
    } catch (error) {
      if (options.signal?.aborted) return;
      throw new ServerUnavailable(`the event stream from ${this.baseUrl} broke: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers = this.headers(body !== undefined);
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ServerUnavailable(`cannot reach the Inferno server at ${this.baseUrl}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const text = await response.text();
    if (!response.ok) throw this.remoteError(response.status, text);
    return JSON.parse(text) as T;
  }

  private remoteError(status: number, text: string): InfernoError {
    let body: ErrorBody = {};
    try {
      body = JSON.parse(text) as ErrorBody;
    } catch {
      // Not an Inferno error body (a proxy's page, say): reported with its status below.
    }
    const message = body.error?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`;
    const code = body.error?.code ?? "";
    const Known = ERRORS_BY_CODE[code];
    if (Known) return new Known(message, { details: { status, code } });
    return new ServerUnavailable(`the server at ${this.baseUrl} answered ${status}: ${message}`, {
      details: { status, code },
    });
  }
}

/** A server-sent event stream's events as they arrive: each one's `id` (null when it has none) and its data lines. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ id: string | null; data: string }> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of body) {
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | null = null;
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length > 0) yield { id, data: data.join("\n") };
    }
  }
}
