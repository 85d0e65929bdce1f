/**
 * What every route group gets: the runtime, the admission queue, the lifecycle (`AppLifecycle`, below), metrics; and
 * shared request helpers.
 */
import { type IncomingHttpHeaders, ServerResponse } from "node:http";
// @hono/node-server's marker for a response the handler writes to the Node response itself.
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import type { z } from "zod";
import { Aborted, BadRequest, isInfernoError, messageOf } from "../errors/index.js";
import type { ServerRuntime } from "./ports.js";
import type { EventHub } from "./events.js";
import type { PathRedactor } from "./exposure.js";
import type { ServerMetrics } from "./metrics.js";
import type { AdmissionQueue } from "./queue.js";
import { parseBody } from "./schemas.js";

export { RESPONSE_ALREADY_SENT };

export interface AppDeps {
  runtime: ServerRuntime;
  queue: AdmissionQueue;
  lifecycle: AppLifecycle;
  metrics: ServerMetrics;
  /** The cache's events for `/v1/cache/events` (backlog and clients). */
  events: EventHub;
  /** Takes server paths out of messages sent to clients (errors, events): see exposure.ts. */
  paths: PathRedactor;
  /** The package version, reported by /health. */
  version: string;
  startedAt: number;
  /**
   * The start-up warm-up: `running` until the cache's `warmupDone` settles and then the server's own warm-up requests
   * end (server/warm-up-requests.ts).
   */
  warmup: { state: "running" | "done" | "failed" };
  /** The value of `WARM_UP_HEADER` that marks the server's own warm-up requests while they run; null otherwise. */
  warmUpToken: string | null;
}

/** Hono context variables set by routes for the request middleware. */
export interface AppEnv {
  Variables: {
    /** Settles when a streamed response body has ended: latency and in-flight tracking wait for it. */
    streamDone: Promise<void>;
    /** A peer's forward (its fleet secret checked): how many nodes forwarded it (server/fleet.ts). */
    fleetHops: number;
    /** The request's `Origin`, when `server.allowed_origins` lists it (the browser guard in app.ts): see `corsHeaders`. */
    corsOrigin: string;
  };
}

export type AppContext = Context<AppEnv>;

/**
 * The request's JSON body; an empty body is `{}` (admin routes take optional bodies). A body that stops arriving
 * because the client went away is a client abort (499 in logs and metrics), never a server error; the body limit's own
 * refusal (413) passes through.
 */
export async function readJson(c: AppContext): Promise<unknown> {
  let text: string;
  try {
    text = await c.req.text();
  } catch (error) {
    if (isInfernoError(error)) throw error;
    throw new Aborted(`the client closed the connection before the request body was complete (${messageOf(error)})`, {
      cause: error,
    });
  }
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new BadRequest(`request body is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** The request's JSON body as `schema` parses it: a 400 naming the first field that does not fit (see `parseBody`). */
export async function readBody<S extends z.ZodType>(c: AppContext, schema: S): Promise<z.output<S>> {
  return parseBody(schema, await readJson(c));
}

/** The request headers as Node parsed them under @hono/node-server (`c.env.incoming`); undefined under `app.fetch`. */
export function nodeRequestHeaders(c: AppContext): IncomingHttpHeaders | undefined {
  return (c.env as { incoming?: { headers?: IncomingHttpHeaders } } | undefined)?.incoming?.headers;
}

/**
 * One request header (a name in lower case): under Node as Node parsed it — `c.req.header` builds the adapter's web
 * `Headers` view of every header first, a cost each request of a fleet would pay for a header or two.
 */
export function requestHeader(c: AppContext, name: string): string | undefined {
  const headers = nodeRequestHeaders(c);
  return headers ? (headers[name] as string | undefined) : c.req.header(name);
}

/** The request's path and query as sent (`/v1/completions?x=1`). */
export function requestPath(c: AppContext): string {
  const raw = (c.env as { incoming?: { url?: string } } | undefined)?.incoming?.url;
  if (raw?.startsWith("/")) return raw;
  const url = new URL(c.req.url);
  return `${url.pathname}${url.search}`;
}

/** The header that marks a warm-up request the server sends itself (server/warm-up-requests.ts). */
export const WARM_UP_HEADER = "x-inferno-warm-up";

/**
 * Whether this is one of the server's own warm-up requests: its `WARM_UP_HEADER` carries the token this process drew
 * (no client can send it), and only while they run. Such a request counts nowhere: no use, no metrics, no request line
 * in the log (an error in one is still logged).
 */
export function isWarmUpRequest(c: AppContext, deps: Pick<AppDeps, "warmUpToken">): boolean {
  if (deps.warmUpToken === null) return false;
  return requestHeader(c, WARM_UP_HEADER) === deps.warmUpToken;
}

/** The Node response under @hono/node-server (`c.env.outgoing`); undefined when `app.fetch` is called directly. */
export function nodeResponse(c: AppContext): ServerResponse | undefined {
  const outgoing = (c.env as { outgoing?: unknown } | undefined)?.outgoing;
  return outgoing instanceof ServerResponse ? outgoing : undefined;
}

const NO_HEADERS: Readonly<Record<string, string>> = {};

/**
 * The CORS headers a listed origin's request gets (none for any other request). Hono adds them to the answers it
 * writes; an answer written to the Node response directly (`jsonResponse`, a stream, a forward) adds them itself.
 */
export function corsHeaders(c: AppContext): Readonly<Record<string, string>> {
  const origin = c.get("corsOrigin");
  return origin === undefined ? NO_HEADERS : { "access-control-allow-origin": origin, vary: "Origin" };
}

/**
 * A 200 JSON answer, as `c.json` gives it. Under Node it is written straight to the Node response: no web Response to
 * build for the adapter to read back.
 */
export function jsonResponse(c: AppContext, body: unknown): Response {
  const outgoing = nodeResponse(c);
  if (outgoing === undefined) return c.json(body);
  const text = JSON.stringify(body);
  outgoing.writeHead(200, {
    ...corsHeaders(c),
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  outgoing.end(text);
  return RESPONSE_ALREADY_SENT;
}

/**
 * Aborts when the client goes away or the server's shutdown grace period ends. Served by Node (`c.env.outgoing`), one
 * controller per request does it: aborted when the response closes before it was sent in full (what the adapter's own
 * request signal means) or by the lifecycle; neither the adapter's signal nor a combined one is built. `controller`: the
 * caller's own, which it may also abort for reasons of its own (a forward's holder that stops heartbeating); under
 * `app.fetch` the returned signal is then a combined one, not the controller's.
 */
export function requestSignal(c: AppContext, lifecycle: AppLifecycle, controller = new AbortController()): AbortSignal {
  const outgoing = nodeResponse(c);
  if (outgoing === undefined) return AbortSignal.any([c.req.raw.signal, lifecycle.signal, controller.signal]);
  const unwatch = lifecycle.watch(controller);
  outgoing.once("close", () => {
    unwatch();
    if (!outgoing.writableFinished)
      controller.abort(new Error("the client closed the connection before the response was complete"));
  });
  return controller.signal;
}

// ---------------------------------------------------------------------------------------------------------------------
// The app's lifecycle. In-flight work and shutdown for one app: every request (and every stream, which outlives its handler) is tracked
// so a graceful shutdown can wait for it, and one signal aborts whatever is still generating when the wait runs out.

export class AppLifecycle {
  private readonly shutdown = new AbortController();
  private active = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** Requests' own abort controllers (see `watch`). */
  private readonly watched = new Set<AbortController>();

  /** Aborted when in-flight work must stop (shutdown grace period over). */
  get signal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** True once shutdown began: health reports it and new model requests are refused. */
  private readonly drainingController = new AbortController();

  get isDraining(): boolean {
    return this.draining;
  }

  get activeCount(): number {
    return this.active;
  }

  /** Runs `work` as tracked in-flight work. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.active += 1;
    try {
      return await work();
    } finally {
      this.active -= 1;
      if (this.active === 0) this.notifyIdle();
    }
  }

  /** Stops admitting model requests; in-flight ones continue. Long-lived streams (the event stream) end now. */
  beginDraining(): void {
    this.draining = true;
    this.drainingController.abort(new Error("server shutting down"));
  }

  /** Aborted when draining begins: streams without an end of their own (the event stream) close on it. */
  get drainingSignal(): AbortSignal {
    return this.drainingController.signal;
  }

  /** Resolves true when no work is in flight, or false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /**
   * Aborts `controller` too when in-flight work is aborted (already, or later by `abortInFlight`), until the returned
   * function is called: a request's own signal that needs no combined signal per request.
   */
  watch(controller: AbortController): () => void {
    if (this.shutdown.signal.aborted) {
      controller.abort(this.shutdown.signal.reason);
      return () => undefined;
    }
    this.watched.add(controller);
    return () => void this.watched.delete(controller);
  }

  /** Aborts every generation still running (they end with what they have and release their leases). */
  abortInFlight(): void {
    const reason = new Error("server shutting down");
    this.shutdown.abort(reason);
    for (const controller of this.watched) controller.abort(reason);
    this.watched.clear();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const waiter of waiters) waiter();
  }
}
