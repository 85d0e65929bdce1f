/**
 * What `inferno cache events` (alias `inferno cache watch`) does: the running server's cache events as they happen, one
 * line each (`--json`: one JSON object per line, NDJSON). Needs a running server. When the server drops the stream
 * (this client fell behind) it reconnects with the last event id and resumes; when the server goes away it ends.
 */
import { ServerUnavailable } from "../../errors/index.js";
import type { CacheEventJson } from "../../runtime/client.js";
import type { CliContext } from "../context.js";
import { findServer } from "../live.js";
import { formatBytes } from "../../units.js";

/** Wait before reconnecting after the stream ended. */
const RECONNECT_MS = 500;

/** Fields shown as sizes or durations rather than raw numbers. */
const BYTES = new Set(["bytes", "estimate_bytes"]);

function fieldText(key: string, value: unknown): string {
  if (BYTES.has(key) && typeof value === "number") return `${key}=${formatBytes(value)}`;
  if (key === "ms" && typeof value === "number") return `${Math.round(value)}ms`;
  if (key === "progress" && typeof value === "number") return `${Math.round(value * 100)}%`;
  if (key.endsWith("_seconds") && typeof value === "number") return `${key}=${value.toFixed(1)}`;
  if (Array.isArray(value)) {
    const items = value.map((v) =>
      typeof v === "object" && v !== null && "name" in v ? String((v as { name: unknown }).name) : String(v),
    );
    return `${key}=[${items.join(",")}]`;
  }
  return `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
}

/** One event as a line: `16:20:01 loaded       tiny.gguf 412ms bytes=49.6 MiB` (the time in UTC, as the event has it). */
export function eventLine(event: CacheEventJson): string {
  const { type, time, name, key: _key, ...rest } = event;
  const clock = typeof time === "string" ? time.slice(11, 19) : "";
  const parts = [clock, type.padEnd(13)];
  if (typeof name === "string") parts.push(name);
  for (const [key, value] of Object.entries(rest)) {
    if (value === null || value === undefined) continue;
    parts.push(fieldText(key, value));
  }
  return parts.join(" ").trimEnd();
}

/** Prints the running server's cache events until it stops (or the user does). */
export async function watchEvents(ctx: CliContext): Promise<void> {
  const config = await ctx.loadConfig();
  const { server, url } = await findServer(ctx, config);
  if (!server)
    throw new ServerUnavailable(
      `no Inferno server answers at ${url}: start one with \`${ctx.command("serve")}\` (or give --server URL)`,
    );
  ctx.out.info(`watching the cache of the server at ${url} (Ctrl-C to stop)`);
  let lastEventId: string | undefined;
  for (let first = true; ; first = false) {
    try {
      for await (const { id, event } of server.client.events({ lastEventId })) {
        if (id !== null) lastEventId = id;
        ctx.out.print(ctx.out.json ? JSON.stringify(event) : eventLine(event));
      }
    } catch (error) {
      // Reconnecting to a server that went away in between ends the watch; a first failure is an error.
      if (first || !(error instanceof ServerUnavailable)) throw error;
      ctx.out.info(`the server at ${url} stopped`);
      return;
    }
    // The stream ended: the server is going away, or it dropped this client for falling behind (then resume).
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    if (!(await server.client.ping())) {
      ctx.out.info(`the server at ${url} stopped`);
      return;
    }
    ctx.out.info(`the stream ended; resuming after event ${lastEventId ?? "(none)"}`);
  }
}
