/**
 * Serving the HTTP app on a socket, and the graceful shutdown order: stop accepting, let in-flight requests finish
 * (bounded, then abort their generations), close the sockets. Saving and unloading follow in `Runtime.close()`.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import { ServerListenFailed } from "../errors/index.js";
import { type AppOptions, createApp, type InfernoApp } from "../server/app.js";
import type { ServerRuntime } from "./types.js";

/**
 * Time limits on a request's way in (docs/api.md, "Time"): its headers must arrive within
 * `server.headers_timeout_seconds` (60 s by default) and the whole request, body included, within `REQUEST_TIMEOUT_MS`
 * (then Node answers 408 and closes the connection); an idle kept-alive connection is closed after
 * `KEEP_ALIVE_TIMEOUT_MS`. A response has no time limit: a generation is bounded by tokens (the context,
 * `server.max_tokens_limit`), and a client that goes away ends it.
 */
export const REQUEST_TIMEOUT_MS = 300_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often Node checks connections against those timeouts. */
const CONNECTIONS_CHECK_MS = 1_000;

/** In-flight requests get this long to finish at shutdown before their generations are aborted. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** After aborting, generations get this long to notice and release their leases. */
const ABORT_SETTLE_MS = 2_000;
/** Finished responses get this long to flush to their clients before their connections are cut. */
const CONNECTION_SETTLE_MS = 2_000;
const IDLE_SWEEP_MS = 25;

export interface StartServerOptions extends Omit<AppOptions, "warmUpRequests"> {
  /** Defaults to `[server] host`. */
  host?: string;
  /** Defaults to `[server] port`; 0 picks a free port. */
  port?: number;
}

export interface ShutdownReport {
  /** True when every in-flight request finished within the grace period. */
  drained: boolean;
  /** Requests whose generation was aborted because the grace period ran out. */
  aborted: number;
}

export interface RunningServer {
  /** `http://host:port`, with the real port when 0 was asked for. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly app: InfernoApp;
  /** Stops accepting, waits up to `graceMs` for in-flight requests, aborts the rest, closes every socket. Idempotent. */
  close(graceMs?: number): Promise<ShutdownReport>;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\])$/i;

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

function urlOf(host: string, port: number): string {
  const literal = host.includes(":") ? `[${host}]` : host;
  return `http://${literal}:${port}`;
}

function listen(app: InfernoApp, host: string, port: number, headersTimeoutMs: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    // Node checks the header and request timeouts every `connectionsCheckingInterval` (30 s by default), so slow
    // headers were cut at 60–90 s; checked every second, the header timeout holds to about a second.
    const serverOptions = { connectionsCheckingInterval: CONNECTIONS_CHECK_MS };
    const server = serve({ fetch: app.fetch, hostname: host, port, serverOptions }) as Server;
    server.headersTimeout = headersTimeoutMs;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    const onError = (error: NodeJS.ErrnoException) => {
      const reason =
        error.code === "EADDRINUSE"
          ? `port ${port} is already in use (another \`inferno serve\`? choose one with --port)`
          : error.code === "EACCES"
            ? `permission denied for port ${port}`
            : error.message;
      reject(new ServerListenFailed(`cannot listen on ${host}:${port}: ${reason}`, { cause: error }));
    };
    server.once("error", onError);
    server.once("listening", () => {
      server.off("error", onError);
      resolve(server);
    });
  });
}

/**
 * Lets finished responses reach their clients: a stream's last bytes may still be on their way to the socket when its
 * handler is done, so connections are closed as they go idle, and forcibly only after a bound.
 */
async function settleConnections(server: Server, closed: Promise<void>): Promise<void> {
  const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
  const bound = new Promise<void>((resolve) => setTimeout(resolve, CONNECTION_SETTLE_MS).unref());
  await Promise.race([closed, bound]);
  clearInterval(sweep);
  server.closeAllConnections();
  await closed;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Builds the app for `runtime` and serves it. Resolves once the socket listens. */
export async function startServer(runtime: ServerRuntime, options: StartServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? runtime.config.server.host;
  if (!isLoopback(host) && runtime.config.server.api_key === "") {
    runtime.logger.warn(
      { host },
      `binding to ${host}, reachable from other machines, without an API key: anyone who can reach it can use your models; set server.api_key (or --api-key) or bind to 127.0.0.1`,
    );
  }
  // The app sends itself its warm-up requests once it listens and the cache's warm-up is over; `/ready` waits for them.
  const app = createApp(runtime, { ...options, warmUpRequests: true });
  let server: Server;
  try {
    const { port, headers_timeout_seconds: headersTimeoutSeconds } = runtime.config.server;
    server = await listen(app, host, options.port ?? port, headersTimeoutSeconds * 1000);
  } catch (error) {
    app.dispose();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  void app.warmUp({ host, port });
  let closing: Promise<ShutdownReport> | null = null;

  const shutdown = async (graceMs: number): Promise<ShutdownReport> => {
    app.lifecycle.beginDraining();
    const closed = closeServer(server);
    server.closeIdleConnections();
    const drained = await app.lifecycle.whenIdle(graceMs);
    const aborted = app.lifecycle.activeCount;
    if (!drained) {
      runtime.logger.warn(
        { requests: aborted, grace_ms: graceMs },
        "in-flight requests did not finish in time; aborting them",
      );
      app.lifecycle.abortInFlight();
      await app.lifecycle.whenIdle(ABORT_SETTLE_MS);
    }
    await settleConnections(server, closed);
    app.dispose();
    return { drained, aborted };
  };

  return {
    url: urlOf(host, port),
    host,
    port,
    app,
    close(graceMs = DEFAULT_SHUTDOWN_GRACE_MS) {
      closing ??= shutdown(graceMs);
      return closing;
    },
  };
}
