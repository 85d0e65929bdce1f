/**
 * `createApp(runtime)`: the HTTP API as a hono app. Route groups live in their own files (openai.ts, ollama.ts,
 * cache-admin.ts, health.ts); this file wires the cross-cutting parts — browser safety (the Host, Origin and body-type
 * checks, below), request tracking and metrics, logging, the API key, the body size limit — and the one error mapper.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { parallelCount } from "../models/load-settings.js";
import {
  Forbidden,
  messageOf,
  PayloadTooLarge,
  RouteNotFound,
  Unauthorized,
  UnsupportedMediaType,
} from "../errors/index.js";
import type { Bytes } from "../models/types.js";
import type { ServerRuntime } from "./ports.js";
import { cacheAdminRoutes } from "./cache-admin.js";
import {
  type AppContext,
  type AppDeps,
  type AppEnv,
  AppLifecycle,
  isWarmUpRequest,
  nodeResponse,
  requestHeader,
  RESPONSE_ALREADY_SENT,
} from "./context.js";
import { errorResponse, mapError } from "./errors.js";
import { fleetPeerAuth, fleetRoutes, fleetRouting } from "./fleet.js";
import { EventHub, publicEvent } from "./events.js";
import { PathRedactor } from "./exposure.js";
import { sendWarmUpRequests, warmUpModel, warmUpToken } from "./warm-up-requests.js";
import { healthRoutes } from "./health.js";
import { createMetrics } from "./metrics.js";
import { ollamaRoutes } from "./ollama.js";
import { openaiRoutes } from "./openai.js";
import { AdmissionQueue } from "./queue.js";
import { responsesRoutes } from "./responses.js";
import { statusPageRoutes } from "./status-page.js";
import { isIP } from "node:net";
import { hostname } from "node:os";
import type { ServerConfig } from "../config/schema.js";

/** Request bodies above this are refused with 413 (long chats and embedding batches fit comfortably). */
export const DEFAULT_MAX_BODY_BYTES: Bytes = 8 * 1024 * 1024;

export interface AppOptions {
  /** Largest request body accepted, in bytes. Default 8 MiB. */
  maxBodyBytes?: Bytes;
  /**
   * Model requests that run at once before others queue (then `server.max_queue` may wait, the rest get 503).
   * Default: `cache.max_cached_models × backend.parallel` (auto: the machine rule's number, `parallelCount`), every
   * sequence every resident model can run. An upper bound on purpose: auto resolves per model load (fewer sequences when
   * more would not fit the memory limit), but the slots are set before any model loads and a request for a model not
   * yet loaded needs one too; a model's own sequence pool queues what its resolved count cannot run.
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
    const match = /^Bearer\s+(.+)$/i.exec(requestHeader(c, "authorization") ?? "");
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
    // A response the route wrote to the Node response itself (a forward's) carries its status there.
    const status = c.res === RESPONSE_ALREADY_SENT ? (nodeResponse(c)?.statusCode ?? 200) : c.res.status;
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
    const length = requestHeader(c, "content-length");
    const chunked = requestHeader(c, "transfer-encoding") !== undefined;
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
    slots: options.concurrentRequests ?? cacheConfig.max_cached_models * parallelCount(backend.parallel),
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

  // A single node (no `[fleet] redis_url`) has no peers to authenticate or route to: its requests skip both steps.
  const inFleet = runtime.config.fleet.redis_url !== "";
  const app = new Hono<AppEnv>();
  app.use("*", trackRequests(deps));
  app.use("*", browserGuard(server));
  app.use("*", limitBody(maxBodyBytes));
  if (inFleet) app.use("*", fleetPeerAuth(deps));
  if (server.api_key !== "") {
    app.use("/v1/*", requireApiKey(server.api_key));
    app.use("/api/*", requireApiKey(server.api_key));
  }
  if (inFleet) app.use("*", fleetRouting(deps));
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

// ---------------------------------------------------------------------------------------------------------------------
// Browser safety: what keeps a web page the user opens from using the server (Ollama's CVE-2024-28224 and its answer,
// a host allow-list and `OLLAMA_ORIGINS`). A browser lets any page send requests to `127.0.0.1` — without reading the
// answer unless CORS allows it, but a POST that clears the cache needs no answer — and a page on a name whose DNS
// answer turns to `127.0.0.1` (DNS rebinding) is even same-origin with the server. Three checks, before anything else
// runs:
//
// - `Host`: a loopback or private name (`localhost`, `*.localhost`, `*.local`, `*.internal`), an IP address, this
//   machine's host name, `server.host`, or listed in `server.allowed_hosts`; anything else is a name someone else's
//   DNS chose (403).
// - `Origin` (sent by browsers with every cross-origin request and every POST): absent (not a browser), the server's
//   own (its status page), or listed in `server.allowed_origins`; anything else is a page of another site (403). Only
//   listed origins get CORS headers, and preflights (`OPTIONS`) are answered only for them.
// - A request body on any route must be JSON (`application/json` or `…+json`): `text/plain`, forms and bodies without
//   a type are what a page can send without a preflight (415).

/** Methods and headers a listed origin's preflight is granted. */
const CORS_METHODS = "GET, POST, DELETE, OPTIONS";
const CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID, OpenAI-Organization, OpenAI-Project, X-Stainless-*";
/**
 * Names no public DNS answers for, so no web page can rebind them (as Ollama's list): `*.localhost`, `*.local` (mDNS),
 * `*.internal` (`host.docker.internal`, a container reaching the server on its host).
 */
const PRIVATE_SUFFIXES = [".localhost", ".local", ".internal"];
/** Longest header value quoted back in a refusal. */
const QUOTE_CHARS = 200;

/** A host name without port, brackets, trailing dot or case: `[::1]:8080` → `::1`, `Example.COM.:80` → `example.com`. */
export function hostName(header: string): string {
  const text = header.trim().toLowerCase();
  const name = text.startsWith("[") ? text.slice(1, text.indexOf("]")) : text.replace(/:\d*$/, "");
  return name.replace(/\.$/, "");
}

/** A pattern of `allowed_hosts` or `allowed_origins` (`*` matches any run of characters) as a test. */
function matcher(patterns: readonly string[], normalize: (text: string) => string): (value: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const pattern of patterns.map(normalize)) {
    if (!pattern.includes("*")) exact.add(pattern);
    else globs.push(new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`));
  }
  return (value) => exact.has(value) || globs.some((glob) => glob.test(value));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** An origin as compared: lower case, no trailing slash. */
function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, "");
}

/** `scheme://host:port` of an origin, with the scheme's default port spelt out, or null when it is no URL. */
function originHost(origin: string): string | null {
  try {
    const url = new URL(origin);
    return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
  } catch {
    return null;
  }
}

/** The Host header as `host:port` (port 80 when it names none), comparable with `originHost`. */
function requestHost(header: string): string | null {
  try {
    const url = new URL(`http://${header}`);
    return `${url.hostname}:${url.port || "80"}`;
  } catch {
    return null;
  }
}

function quote(value: string): string {
  return JSON.stringify(value.length > QUOTE_CHARS ? `${value.slice(0, QUOTE_CHARS)}…` : value);
}

function isJson(contentType: string): boolean {
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

export type GuardConfig = Pick<ServerConfig, "host" | "allowed_hosts" | "allowed_origins">;

/** The middleware: see the file's comment. */
export function browserGuard(server: GuardConfig): MiddlewareHandler<AppEnv> {
  const ownNames = new Set([hostName(server.host), hostName(hostname())]);
  const hostListed = matcher(server.allowed_hosts, hostName);
  const originListed = matcher(server.allowed_origins, normalizeOrigin);
  const hostAllowed = (name: string) =>
    name === "localhost" ||
    PRIVATE_SUFFIXES.some((suffix) => name.endsWith(suffix)) ||
    isIP(name) !== 0 ||
    ownNames.has(name) ||
    hostListed(name);

  return async (c, next) => {
    const header = (name: string) => requestHeader(c, name);
    const host = header("host");
    // HTTP/1.0 clients may send no Host; every browser sends one.
    if (host !== undefined && !hostAllowed(hostName(host))) {
      throw new Forbidden(
        `this server does not answer to the host ${quote(host)}: add its name to server.allowed_hosts to reach it by that name`,
        { details: { header: "host", allowed_hosts: server.allowed_hosts } },
      );
    }
    const origin = header("origin");
    const listed = origin !== undefined && originListed(normalizeOrigin(origin));
    if (origin !== undefined && !listed && !sameOrigin(origin, host)) {
      throw new Forbidden(
        `requests from web pages of ${quote(origin)} are refused: add the origin to server.allowed_origins to let that page use this server`,
        { details: { header: "origin", allowed_origins: server.allowed_origins } },
      );
    }
    if (listed) {
      c.header("Access-Control-Allow-Origin", origin);
      c.header("Vary", "Origin");
      c.set("corsOrigin", origin);
      if (c.req.method === "OPTIONS" && header("access-control-request-method") !== undefined) {
        return preflight(c, header("access-control-request-headers"));
      }
    }
    if (hasBody(header) && !isJson(header("content-type") ?? "")) {
      const type = header("content-type");
      throw new UnsupportedMediaType(
        `request bodies must be JSON, sent with the header \`Content-Type: application/json\`; this one was ${type === undefined ? "sent without a type" : quote(type)}`,
        { details: { content_type: type ?? null } },
      );
    }
    await next();
  };
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const from = originHost(origin);
  return from !== null && from === requestHost(host);
}

function hasBody(header: (name: string) => string | undefined): boolean {
  const length = header("content-length");
  return header("transfer-encoding") !== undefined || (length !== undefined && Number(length) > 0);
}

function preflight(c: AppContext, requested: string | undefined): Response {
  c.header("Access-Control-Allow-Methods", CORS_METHODS);
  c.header("Access-Control-Allow-Headers", requested ?? CORS_HEADERS);
  c.header("Access-Control-Max-Age", "600");
  return c.body(null, 204);
}
