/**
 * `createApp(runtime)`: the HTTP API as a hono app. Route groups live in their own files (openai.ts, ollama.ts,
 * cache-admin.ts, health.ts); this file wires the cross-cutting parts — request tracking and metrics, logging, the API key, the body
 * size limit — and the one error mapper.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { messageOf, PayloadTooLarge, RouteNotFound, Unauthorized } from "../errors/index.js";
import type { Bytes } from "../models/types.js";
import type { ServerRuntime } from "./ports.js";
import { cacheAdminRoutes } from "./cache-admin.js";
import { type AppContext, type AppDeps, type AppEnv, isWarmUpRequest, nodeRequestHeaders } from "./context.js";
import { errorResponse, mapError } from "./errors.js";
import { fleetPeerAuth, fleetRoutes, fleetRouting } from "./fleet.js";
import { EventHub, publicEvent } from "./events.js";
import { PathRedactor } from "./exposure.js";
import { browserGuard } from "./guard.js";
import { sendWarmUpRequests, warmUpModel, warmUpToken } from "./warm-up-requests.js";
import { healthRoutes } from "./health.js";
import { AppLifecycle } from "./lifecycle.js";
import { createMetrics } from "./metrics.js";
import { ollamaRoutes } from "./ollama.js";
import { openaiRoutes } from "./openai.js";
import { AdmissionQueue } from "./queue.js";
import { responsesRoutes } from "./responses.js";
import { statusPageRoutes } from "./status-page.js";

/** Request bodies above this are refused with 413 (long chats and embedding batches fit comfortably). */
export const DEFAULT_MAX_BODY_BYTES: Bytes = 8 * 1024 * 1024;

export interface AppOptions {
  /** Largest request body accepted, in bytes. Default 8 MiB. */
  maxBodyBytes?: Bytes;
  /**
   * Model requests that run at once before others queue (then `server.max_queue` may wait, the rest get 503).
   * Default: `cache.max_cached_models × backend.parallel`, every sequence every resident model can run.
   */
  concurrentRequests?: number;
  /** The package version reported by /health. */
  version?: string;
  /** Events kept for event-stream clients that reconnect with `Last-Event-ID`. Default 1000. */
  eventsBacklog?: number;
  /** Events waiting for one event-stream client before it is dropped for not reading. Default 1000. */
  eventsClientBuffer?: number;
  /**
   * The app will be told where it listens (`warmUp`, which `startServer` calls) and sends itself its warm-up requests
   * there (server/warm-up-requests.ts): `/ready` answers 200 only once the cache's warm-up and then these have ended.
   * Default false: `/ready` waits for the cache's warm-up only.
   */
  warmUpRequests?: boolean;
}

export interface InfernoApp {
  readonly app: Hono<AppEnv>;
  /** In-flight tracking and shutdown control, used by the server's graceful shutdown. */
  readonly lifecycle: AppLifecycle;
  /** The hono fetch handler. */
  readonly fetch: (request: Request, ...rest: unknown[]) => Response | Promise<Response>;
  /** The event stream's hub (`/v1/cache/events`): its clients and backlog. */
  readonly events: EventHub;
  /** Settles when the start-up warm-up is over (`/ready` then answers 200, or 503 for good if it failed). */
  readonly warmedUp: Promise<void>;
  /**
   * With `warmUpRequests`: once the cache's warm-up is over, sends the server's own warm-up requests to where it
   * listens, then lets `/ready` answer 200. Never rejects.
   */
  warmUp(address: { host: string; port: number }): Promise<void>;
  /** Stops metric collection from the cache and ends the event streams. */
  dispose(): void;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Bearer-token check. Hashing both sides gives equal lengths, so the comparison is constant-time for any input. */
function requireApiKey(apiKey: string): MiddlewareHandler<AppEnv> {
  const expected = sha256(apiKey);
  return async (c, next) => {
    // A peer's forward carries the fleet secret instead (checked by fleetPeerAuth), never the client's key.
    if (c.get("fleetHops") !== undefined) return next();
    const match = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
    if (!match || !timingSafeEqual(sha256((match[1] as string).trim()), expected)) {
      throw new Unauthorized(
        match
          ? "invalid API key in the Authorization header"
          : "this server requires an API key: send the header `Authorization: Bearer <key>`",
      );
    }
    await next();
  };
}

/** The matched route pattern for labels (never the raw path, which would explode metric cardinality). */
function routeLabel(c: AppContext): string {
  const path = routePath(c, -1);
  return path.endsWith("*") ? "unmatched" : path;
}

function trackRequests(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    // The server's own warm-up requests are no one's traffic: in flight for shutdown, but never in metrics or logs.
    if (isWarmUpRequest(c, deps)) return deps.lifecycle.track(() => next());
    await deps.lifecycle.track(() => next());
    const status = c.res.status;
    const route = routeLabel(c);
    const streamDone = (c.get("streamDone") as Promise<void> | undefined) ?? Promise.resolve();
    void streamDone.then(() => {
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.observeRequest(c.req.method, route, status, seconds);
      deps.runtime.logger.debug(
        { method: c.req.method, path: c.req.path, status, ms: Math.round(seconds * 1000) },
        "request",
      );
    });
  };
}

/**
 * Refuses bodies over `maxBytes` with PayloadTooLarge. A request that declares its length is judged by the header
 * alone (Node's parser never delivers more than it declares), so its body stays unread here and the route reads it
 * straight from the socket; only a chunked body is counted as it streams in (hono's bodyLimit).
 */
function limitBody(maxBytes: Bytes): MiddlewareHandler<AppEnv> {
  const tooLarge = () => {
    throw new PayloadTooLarge(`request body exceeds the limit of ${maxBytes} bytes`, {
      details: { limit_bytes: maxBytes },
    });
  };
  const counted = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return (c, next) => {
    // Under Node the headers as Node parsed them: asking the adapter builds a web Headers view first.
    const headers = nodeRequestHeaders(c);
    const length = headers ? headers["content-length"] : c.req.header("content-length");
    const chunked = headers
      ? headers["transfer-encoding"] !== undefined
      : c.req.header("transfer-encoding") !== undefined;
    if (length !== undefined && !chunked) {
      return Number(length) > maxBytes ? tooLarge() : next();
    }
    return c.req.method === "GET" || c.req.method === "HEAD" ? next() : counted(c, next);
  };
}

export function createApp(runtime: ServerRuntime, options: AppOptions = {}): InfernoApp {
  const { cache: cacheConfig, backend, server } = runtime.config;
  const lifecycle = new AppLifecycle();
  const queue = new AdmissionQueue({
    slots: options.concurrentRequests ?? cacheConfig.max_cached_models * backend.parallel,
    maxWaiting: server.max_queue,
  });
  const paths = new PathRedactor({ modelsDirs: runtime.config.models_dirs, cacheDir: cacheConfig.cache_dir });
  const deps: AppDeps = {
    runtime,
    lifecycle,
    queue,
    metrics: createMetrics(runtime.cache, queue),
    version: options.version ?? "unknown",
    startedAt: Date.now(),
    warmup: { state: "running" },
    warmUpToken: options.warmUpRequests ? warmUpToken() : null,
    paths,
    events: new EventHub(runtime.cache, {
      paths,
      backlog: options.eventsBacklog,
      clientBuffer: options.eventsClientBuffer,
      onDrop: () => runtime.logger.warn({}, "event stream client dropped: it did not read its events"),
    }),
  };
  let requestsOver!: () => void;
  const requestsDone = options.warmUpRequests ? new Promise<void>((resolve) => (requestsOver = resolve)) : undefined;
  const warmedUp = runtime.cache.warmupDone
    .then(() => requestsDone)
    .then(
      () => void (deps.warmup.state = "done"),
      () => void (deps.warmup.state = "failed"),
    )
    .finally(() => (deps.warmUpToken = null));
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  // In a fleet, every cache event also goes to the fleet's one event stream, named as the event stream names it.
  const offFleetEvents = runtime.cache.onAny((event) =>
    runtime.fleet?.publishEvent(publicEvent(event, new Date(), paths)),
  );

  const app = new Hono<AppEnv>();
  app.use("*", trackRequests(deps));
  app.use("*", browserGuard(server));
  app.use("*", limitBody(maxBodyBytes));
  app.use("*", fleetPeerAuth(deps));
  if (server.api_key !== "") {
    app.use("/v1/*", requireApiKey(server.api_key));
    app.use("/api/*", requireApiKey(server.api_key));
  }
  app.use("*", fleetRouting(deps));
  app.route("/", healthRoutes(deps));
  app.route("/", openaiRoutes(deps));
  app.route("/", responsesRoutes(deps));
  app.route("/", cacheAdminRoutes(deps));
  app.route("/", fleetRoutes(deps));
  app.route("/", ollamaRoutes(deps));
  // After the Ollama routes: they answer `HEAD /` and pass GET / on to the status page.
  app.route("/", statusPageRoutes(deps));

  app.notFound((c) => {
    throw new RouteNotFound(`no route for ${c.req.method} ${c.req.path}`);
  });
  app.onError((error, c) => {
    const mapped = mapError(error, deps.paths);
    const fields = { method: c.req.method, path: c.req.path, status: mapped.status, code: mapped.body.error.code };
    if (mapped.internal) runtime.logger.error({ ...fields, err: error }, mapped.body.error.message);
    // The log is the operator's: the message as raised, paths and all.
    else runtime.logger.info(fields, messageOf(error));
    return errorResponse(c, mapped);
  });

  return {
    app,
    lifecycle,
    events: deps.events,
    warmedUp,
    async warmUp(address) {
      const token = deps.warmUpToken;
      if (token === null) return;
      try {
        const model = await warmUpModel(runtime.models, (await runtime.cache.warmupDone).loaded);
        if (model !== null && !lifecycle.isDraining) await sendWarmUpRequests(address, model, token, server.api_key);
      } catch {
        // best effort: the server is ready all the same, its request path compiled by its first client instead
      } finally {
        requestsOver();
      }
    },
    fetch: (request, ...rest) => app.fetch(request, ...(rest as [])),
    dispose: () => {
      deps.metrics.close();
      deps.events.close();
      offFleetEvents();
    },
  };
}
