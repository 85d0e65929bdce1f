/**
 * `inferno cache advise` and `GET /v1/cache/advise`: the replay (cache/sim/advise.ts) with the HiGHS solver, on a worker
 * thread — solving the optimum of a 10,000-request log takes seconds of CPU, and a server's event loop must not wait for
 * it. Live and file mode both come here with a state (`ModelCache.snapshot()` or the decoded file), so both give the
 * same answer for the same log.
 *
 * This module is both sides: `adviseOn` (caller) and the worker's body (when loaded as the worker).
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { CacheState } from "../cache/persistence/types.js";
import { advise, adviceWithoutLog, type AdviceReport, type AdviseOptions } from "../cache/sim/advise.js";
import { InfernoError, NoRequestLog } from "../errors/index.js";
import { fleetAdvice, type FleetAdviceInput } from "./fleet-advice.js";
import { highsSolver } from "./lp-solver.js";

type AdviceInput = { state: CacheState | null; fleet?: FleetAdviceInput } & Omit<AdviseOptions, "solver">;
type AdviceReply =
  | { report: AdviceReport }
  | { error: { message: string; code: string | null; details: Record<string, unknown> | null } };

/** Either answer, or the `NoRequestLog` it threw (any other error is thrown). */
function orNoLog<T>(fn: () => T): T | NoRequestLog {
  try {
    return fn();
  } catch (error) {
    if (error instanceof NoRequestLog) return error;
    throw error;
  }
}

/**
 * The node's own log replayed, and in a fleet the fleet's merged log through the fleet simulator. `NoRequestLog` only
 * when neither holds enough: a fleet node that served nothing itself still answers for the fleet.
 */
async function adviseHere(input: AdviceInput): Promise<AdviceReport> {
  const solver = await highsSolver();
  const own = orNoLog(() => advise(input.state, { ...input, solver }));
  const { fleet } = input;
  if (!fleet) {
    if (own instanceof NoRequestLog) throw own;
    return own;
  }
  const merged = orNoLog(() => fleetAdvice(fleet));
  if (own instanceof NoRequestLog) {
    if (merged instanceof NoRequestLog) throw own;
    return { ...adviceWithoutLog(input, `this node: ${own.message}`), fleet: merged };
  }
  if (merged instanceof NoRequestLog) return { ...own, notes: [...own.notes, `fleet: ${merged.message}`] };
  return { ...own, fleet: merged };
}

/** The worker: one replay per worker, its answer posted back. */
if (!isMainThread && parentPort && (workerData as { inferno?: string } | null)?.inferno === "advice") {
  const port = parentPort;
  adviseHere((workerData as { input: AdviceInput }).input).then(
    (report) => port.postMessage({ report } satisfies AdviceReply),
    (error: unknown) =>
      port.postMessage({
        error: {
          message: error instanceof Error ? error.message : String(error),
          code: error instanceof InfernoError ? error.code : null,
          details: error instanceof InfernoError ? (error.details ?? null) : null,
        },
      } satisfies AdviceReply),
  );
}

function startWorker(input: AdviceInput): Worker {
  const data = { inferno: "advice", input };
  return import.meta.url.endsWith(".ts")
    ? // Running from TypeScript sources (tests): the worker registers tsx before loading this file.
      new Worker(
        `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`,
        { eval: true, workerData: data },
      )
    : new Worker(new URL(import.meta.url), { workerData: data });
}

/**
 * `fn` one call at a time: a call while one runs gets that call's answer (a burst of `GET /v1/cache/advise` starts one
 * worker, not one each).
 */
export function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= fn().finally(() => {
      running = null;
    });
    return running;
  };
}

/**
 * What other cache settings would have done with the state's request log (see cache/sim/advise.ts), computed on a
 * worker thread. Throws `NoRequestLog` when there is nothing to replay. A worker that cannot start: computed here.
 */
export async function adviseOn(input: AdviceInput): Promise<AdviceReport> {
  let worker: Worker;
  try {
    worker = startWorker(input);
  } catch {
    return adviseHere(input);
  }
  const reply = await new Promise<AdviceReply | null>((resolve) => {
    worker.once("message", (message: AdviceReply) => resolve(message));
    worker.once("error", () => resolve(null));
    worker.once("exit", () => resolve(null));
  });
  void worker.terminate();
  if (reply === null) return adviseHere(input);
  if ("report" in reply) return reply.report;
  const { message, code, details } = reply.error;
  if (code === "request_log_empty") throw new NoRequestLog(message, details ? { details } : {});
  throw new Error(message);
}
