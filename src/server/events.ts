/**
 * `GET /v1/cache/events`: the cache's events as server-sent events. One hub per app subscribes to the cache's one event
 * source (`onAny`), names each event the way the API documents it (`publicEvent`, the one place where internal names
 * are mapped), numbers it, keeps the last `backlog` events in a ring buffer for clients that reconnect with
 * `Last-Event-ID`, and hands it to every connected client. A client's pending events are bounded: one that does not read
 * (its socket is full) is dropped when the bound is hit, so the cache never waits for a client.
 */
import type { PathRedactor } from "./exposure.js";
import type { CacheEvent } from "../cache/events.js";
import type { CacheService } from "./ports.js";

/** Events kept for clients that reconnect with `Last-Event-ID`. */
export const DEFAULT_EVENTS_BACKLOG = 1000;
/** Events waiting for one client before it is dropped as a reader that does not keep up. */
export const DEFAULT_EVENTS_CLIENT_BUFFER = 1000;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;

/** An event as the stream (and `inferno cache events`) shows it: a type, an ISO time, the facts of the event. */
export interface PublicEvent {
  type: string;
  time: string;
  [field: string]: unknown;
}

/**
 * The one mapping from the cache's event names to the API's: `load` → `loaded`, `evict` → `evicted` (or `crashed`
 * when the reason is that the model's process died), `save` → `saved`, `restore` → `restored`; the others keep their
 * name (`loading`, `load_failed`, `expired`, `pinned`, `warmup`, `hit`, `miss`, `coalesced`, `unknown_model`); `prefix`
 * becomes `prefix_saved`, `prefix_restored`, `prefix_evicted` or `prefix_quarantined`.
 * Fields are snake_case; a failed load carries its error `code` and message, never the error object.
 */
export function publicEvent(event: CacheEvent, time: Date, paths?: PathRedactor): PublicEvent {
  const text = (message: string, error?: unknown) => (paths ? paths.message(message, error) : message);
  const at = time.toISOString();
  switch (event.type) {
    case "load":
      return {
        type: "loaded",
        time: at,
        name: event.name,
        key: event.key,
        ms: event.durationMs,
        bytes: event.memoryBytes,
      };
    case "loading":
      return {
        type: "loading",
        time: at,
        name: event.name,
        key: event.key,
        progress: event.progress,
        estimate_bytes: event.estimateBytes,
      };
    case "load_failed":
      return {
        type: "load_failed",
        time: at,
        name: event.name,
        key: event.key,
        code: event.code,
        message: text(event.error instanceof Error ? event.error.message : String(event.error), event.error),
      };
    case "evict":
      return {
        type: event.reason === "crashed" ? "crashed" : "evicted",
        time: at,
        name: event.name,
        key: event.key,
        reason: event.reason,
        idle_seconds: event.idleSeconds,
        resident_seconds: event.residentSeconds,
      };
    case "expired":
      return { type: "expired", time: at, name: event.name, key: event.key, idle_seconds: event.idleSeconds };
    case "save":
      return {
        type: "saved",
        time: at,
        ok: event.ok,
        bytes: event.bytes,
        ms: event.duration_ms,
        error: event.error === null ? null : text(event.error),
      };
    case "restore":
      return { type: "restored", time: at, models: event.models, missing: event.missing, warning: event.warning };
    case "warmup":
      return { type: "warmup", time: at, loaded: event.loaded, skipped: event.skipped, failed: event.failed };
    case "prefix":
      return {
        type: `prefix_${event.action}`,
        time: at,
        name: event.name,
        key: event.key,
        tokens: event.tokens,
        bytes: event.bytes,
        disk_bytes: event.diskBytes,
        reason: event.reason,
      };
    case "pinned":
    case "hit":
    case "coalesced":
      return { type: event.type, time: at, name: event.name, key: event.key };
    case "miss":
      return { type: "miss", time: at, name: event.name, key: event.key };
    case "unknown_model":
      return { type: "unknown_model", time: at, name: event.name, code: event.code };
  }
}

/** The event types the stream sends, for the README and clients. */
export const PUBLIC_EVENT_TYPES = [
  "restored",
  "pinned",
  "warmup",
  "miss",
  "hit",
  "coalesced",
  "unknown_model",
  "loading",
  "loaded",
  "load_failed",
  "expired",
  "evicted",
  "crashed",
  "saved",
] as const;

interface Numbered {
  id: number;
  event: CacheEvent;
  /** When it happened (ms since the epoch). */
  at: number;
  /** The SSE frame, built when a client first needs it (most events, e.g. every hit, are never sent to anyone). */
  frame?: string;
}

interface Client {
  queue: string[];
  wake: (() => void) | null;
  closed: boolean;
  close(): void;
}

export interface EventHubOptions {
  backlog?: number;
  clientBuffer?: number;
  /** Told when a client is dropped for not reading (for logs). */
  onDrop?: () => void;
  /** Takes paths out of the events' messages (see exposure.ts). */
  paths?: PathRedactor;
}

export class EventHub {
  private readonly ring: Array<Numbered | undefined>;
  private nextId = 1;
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: () => void;
  private readonly backlog: number;
  private readonly clientBuffer: number;
  /** Clients dropped because their buffer filled. */
  dropped = 0;

  constructor(
    cache: Pick<CacheService, "onAny">,
    private readonly options: EventHubOptions = {},
  ) {
    this.backlog = Math.max(1, options.backlog ?? DEFAULT_EVENTS_BACKLOG);
    this.clientBuffer = Math.max(1, options.clientBuffer ?? DEFAULT_EVENTS_CLIENT_BUFFER);
    this.ring = new Array<Numbered | undefined>(this.backlog);
    this.unsubscribe = cache.onAny((event) => this.publish(event));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  private publish(event: CacheEvent): void {
    const entry: Numbered = { id: this.nextId++, event, at: Date.now() };
    this.ring[entry.id % this.backlog] = entry;
    if (this.clients.size === 0) return;
    const frame = this.frameOf(entry);
    for (const client of this.clients) this.push(client, frame);
  }

  private frameOf(entry: Numbered): string {
    if (entry.frame === undefined) {
      const event = publicEvent(entry.event, new Date(entry.at), this.options.paths);
      entry.frame = `id: ${entry.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
    }
    return entry.frame;
  }

  private push(client: Client, frame: string): void {
    if (client.closed) return;
    if (client.queue.length >= this.clientBuffer) {
      this.dropped += 1;
      this.options.onDrop?.();
      client.close();
      return;
    }
    client.queue.push(frame);
    client.wake?.();
  }

  /** Backlog events after `lastId` still in the ring, oldest first. */
  private since(lastId: number): string[] {
    const frames: string[] = [];
    const first = Math.max(lastId + 1, this.nextId - this.backlog);
    for (let id = first; id < this.nextId; id++) {
      const entry = this.ring[id % this.backlog];
      if (entry && entry.id === id) frames.push(this.frameOf(entry));
    }
    return frames;
  }

  /**
   * A new client's stream: after `lastEventId` (the backlog still held since it), then live events. Ends when `signal`
   * aborts (the client left, or the server shuts down) or when the client is dropped.
   */
  stream(lastEventId: number | null, signal: AbortSignal): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    const client: Client = {
      queue: [],
      wake: null,
      closed: false,
      close: () => {
        if (client.closed) return;
        client.closed = true;
        this.clients.delete(client);
        clearInterval(keepalive);
        signal.removeEventListener("abort", client.close);
        client.wake?.();
      },
    };
    // A retry hint, then what the client missed (a first connection gets nothing old: it starts from now).
    client.queue.push(`retry: 1000\n\n`);
    if (lastEventId !== null) client.queue.push(...this.since(lastEventId));
    this.clients.add(client);
    const keepalive = setInterval(() => {
      if (client.queue.length < this.clientBuffer) {
        client.queue.push(": keepalive\n\n");
        client.wake?.();
      }
    }, KEEPALIVE_MS);
    keepalive.unref();
    signal.addEventListener("abort", client.close);
    if (signal.aborted) client.close();
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (client.queue.length === 0 && !client.closed) {
            await new Promise<void>((resolve) => (client.wake = resolve));
            client.wake = null;
          }
          if (client.closed) {
            controller.close();
            return;
          }
          const chunk = client.queue.join("");
          client.queue.length = 0;
          controller.enqueue(encoder.encode(chunk));
        },
        cancel: () => client.close(),
      },
      { highWaterMark: 0 },
    );
  }

  /** Ends every stream and stops listening to the cache. */
  close(): void {
    this.unsubscribe();
    for (const client of [...this.clients]) client.close();
  }
}

/** `Last-Event-ID` (header, or `lastEventId` in the query for clients that cannot set headers): a number, else none. */
export function parseLastEventId(value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value.trim())) return null;
  return Number(value.trim());
}
