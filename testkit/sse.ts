/**
 * An EventSource-style client over fetch for tests: parses `id:`/`event:`/`data:` frames, remembers the last id, and
 * lets a test wait for the next event that matches.
 */
export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export class SseClient {
  readonly messages: SseMessage[] = [];
  lastEventId: string | null = null;
  ended = false;
  status = 0;
  private readonly abort = new AbortController();
  private waiters: Array<() => void> = [];
  private done: Promise<void> = Promise.resolve();

  static async connect(
    url: string,
    options: { lastEventId?: string; headers?: Record<string, string> } = {},
  ): Promise<SseClient> {
    const client = new SseClient();
    const headers: Record<string, string> = { Accept: "text/event-stream", ...options.headers };
    if (options.lastEventId !== undefined) headers["Last-Event-ID"] = options.lastEventId;
    const response = await fetch(url, { headers, signal: client.abort.signal });
    client.status = response.status;
    if (!response.ok || !response.body) {
      client.ended = true;
      await response.body?.cancel();
      return client;
    }
    client.done = client.read(response.body);
    return client;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          this.frame(frame);
        }
      }
    } catch {
      // aborted by close()
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private frame(frame: string): void {
    let id: string | null = null;
    let event = "message";
    const data: string[] = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    if (id !== null) this.lastEventId = id;
    this.messages.push({ id, event, data: data.join("\n") });
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Parsed event objects received so far. */
  events<T = Record<string, unknown>>(): T[] {
    return this.messages.map((m) => JSON.parse(m.data) as T);
  }

  /** Waits until an event satisfies `match` (or the stream ends, or `timeoutMs` passes: then it throws). */
  async waitFor(
    match: (event: Record<string, unknown>) => boolean,
    timeoutMs = 5000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events().find(match);
      if (found) return found;
      if (this.ended)
        throw new Error(
          `stream ended without the event; got ${this.events()
            .map((e) => e.type)
            .join(", ")}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for an event; got ${this.events()
            .map((e) => e.type)
            .join(", ")}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
