/**
 * The state file's CPU work off the main thread: decompressing, parsing and validating a saved state, and merging a
 * delta into one and encoding and compressing the result. Saving or restoring 10,000 models' statistics takes a few
 * hundred milliseconds of CPU; done here, the server's event loop never waits for it. Results come back in chunks
 * (models a thousand at a time), so even taking them in never blocks the loop for long.
 *
 * This module is both sides: `StateWorker` (main thread) and the worker's message loop (when loaded as a worker).
 */
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { InfernoError, StateCorrupt } from "../../errors/index.js";
import { compressState, decompressState, inlineCodec, type StateCodec } from "./file-store.js";
import { mergeDelta } from "./merge.js";
import type { CacheState, PersistedModel, StateDelta } from "./types.js";

/** Models per message: copying one message costs the receiving thread a few milliseconds at most. */
const CHUNK = 200;

type Request =
  | { id: number; op: "decode"; bytes: Uint8Array }
  | { id: number; op: "next" }
  | { id: number; op: "models"; models: PersistedModel[] }
  | { id: number; op: "merge"; current: Uint8Array | null; delta: Omit<StateDelta, "models"> };

type Reply =
  | { id: number; models: PersistedModel[] }
  | { id: number; decoded: Omit<CacheState, "models"> }
  | { id: number; encoded: Uint8Array }
  | { id: number; error: { message: string; code: string | null; details: Record<string, unknown> | null } };

function errorReply(id: number, error: unknown): Reply {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof InfernoError)
    return { id, error: { message, code: error.code, details: error.details ?? null } };
  return { id, error: { message, code: null, details: null } };
}

function serve(port: NonNullable<typeof parentPort>): void {
  const pending = new Map<number, PersistedModel[]>();
  /** Decoded states being handed over, a chunk per "next" (the main thread asks when it took the last one in). */
  const handing = new Map<number, { state: CacheState; offset: number }>();
  const sendNext = (id: number) => {
    const out = handing.get(id);
    if (!out) return;
    if (out.offset < out.state.models.length) {
      port.postMessage({ id, models: out.state.models.slice(out.offset, out.offset + CHUNK) } satisfies Reply);
      out.offset += CHUNK;
      return;
    }
    handing.delete(id);
    const { models: _models, ...rest } = out.state;
    port.postMessage({ id, decoded: rest } satisfies Reply);
  };
  // Decoding and encoding are async (libzstd is WebAssembly, initialised once); "models" chunks of a merge arrive before
  // its final message and are taken synchronously, so they are in place before that merge reads them.
  port.on("message", async (request: Request) => {
    try {
      if (request.op === "decode") {
        handing.set(request.id, { state: await decompressState(request.bytes), offset: 0 });
        sendNext(request.id);
      } else if (request.op === "next") {
        sendNext(request.id);
      } else if (request.op === "models") {
        const models = pending.get(request.id) ?? [];
        for (const model of request.models) models.push(model);
        pending.set(request.id, models);
      } else {
        const models = pending.get(request.id) ?? [];
        pending.delete(request.id);
        const current = request.current ? await decompressState(request.current) : null;
        const encoded = await compressState(mergeDelta(current, { ...request.delta, models }));
        port.postMessage({ id: request.id, encoded } satisfies Reply, [encoded.buffer as ArrayBuffer]);
      }
    } catch (error) {
      pending.delete(request.id);
      port.postMessage(errorReply(request.id, error));
    }
  });
}

if (!isMainThread && parentPort) serve(parentPort);

/** Lets other work run between chunks. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Waiter {
  models: PersistedModel[];
  resolve(reply: Reply): void;
}

/** The main thread's side: one worker, started on first use, never keeping the process alive by itself. */
export class StateWorker implements StateCodec {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private busy = 0;
  /** The worker could not start or died: work runs inline (correct, only not off the event loop). */
  private broken = false;

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = import.meta.url.endsWith(".ts")
      ? // Running from TypeScript sources (tests, `npm run bench`): the worker registers tsx before loading this file.
        new Worker(
          `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`,
          { eval: true },
        )
      : new Worker(new URL(import.meta.url));
    worker.on("message", (reply: Reply) => {
      const waiter = this.waiters.get(reply.id);
      if (!waiter) return;
      if ("models" in reply) {
        for (const model of reply.models) waiter.models.push(model);
        // Ask for the next chunk once this turn of the loop is over: other work runs between chunks.
        setImmediate(() => worker.postMessage({ id: reply.id, op: "next" } satisfies Request));
        return;
      }
      this.waiters.delete(reply.id);
      waiter.resolve(reply);
    });
    const lost = (error: unknown) => {
      // A worker that cannot run (or died): this process does the work inline from now on.
      this.broken = true;
      for (const [id, waiter] of this.waiters) waiter.resolve(errorReply(id, error));
      this.waiters.clear();
      this.worker = null;
    };
    worker.on("error", lost);
    worker.on("exit", (code) => {
      if (this.worker === worker) lost(new Error(`the state worker exited (code ${code})`));
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private call(
    send: (worker: Worker, id: number) => Promise<void>,
  ): Promise<{ reply: Reply; models: PersistedModel[] }> {
    const worker = this.start();
    const id = this.nextId++;
    if (this.busy++ === 0) worker.ref();
    return new Promise<{ reply: Reply; models: PersistedModel[] }>((resolve, reject) => {
      const waiter: Waiter = { models: [], resolve: (reply) => resolve({ reply, models: waiter.models }) };
      this.waiters.set(id, waiter);
      send(worker, id).catch(reject);
    }).finally(() => {
      if (--this.busy === 0) this.worker?.unref();
    });
  }

  private static fail(reply: Reply): never {
    if (!("error" in reply)) throw new Error("the state worker answered out of turn");
    const { message, code, details } = reply.error;
    if (code === "state_corrupt") throw new StateCorrupt(message, details ? { details } : {});
    throw new Error(message);
  }

  /** Decompresses, parses, validates and migrates a saved state. Throws what `decompressState` would. */
  async decode(bytes: Uint8Array): Promise<CacheState> {
    if (this.broken) return inlineCodec.decode(bytes);
    const { reply, models } = await this.call(async (worker, id) =>
      worker.postMessage({ id, op: "decode", bytes } satisfies Request),
    );
    if (!("decoded" in reply)) {
      if (this.broken) return inlineCodec.decode(bytes);
      StateWorker.fail(reply);
    }
    return { ...reply.decoded, models };
  }

  /** The stored state (compressed bytes, or null) with the delta merged in, encoded and compressed. */
  async merge(current: Uint8Array | null, delta: StateDelta): Promise<Uint8Array> {
    if (this.broken) return inlineCodec.merge(current, delta);
    const { models, ...rest } = delta;
    const { reply } = await this.call(async (worker, id) => {
      for (let i = 0; i < models.length; i += CHUNK) {
        worker.postMessage({ id, op: "models", models: models.slice(i, i + CHUNK) } satisfies Request);
        await turn();
      }
      worker.postMessage({ id, op: "merge", current, delta: rest } satisfies Request);
    });
    if (!("encoded" in reply)) {
      if (this.broken) return inlineCodec.merge(current, delta);
      StateWorker.fail(reply);
    }
    return reply.encoded;
  }
}
