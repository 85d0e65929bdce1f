/**
 * The offline optimum of a trace: the least total load time any eviction schedule could reach knowing every future
 * request. Built as a linear program in the shape of Berger, Beckmann and Harchol-Balter's "flow offline optimum"
 * (FOO, SIGMETRICS 2018): each stretch between two requests of one model is a "bypass" that either stays in the cache
 * (and uses its room along the way) or is evicted and pays the reload; the room in use is a running sum along the
 * requests, bounded at every request by the limit less the model that request needs. Two resources share the
 * stretches (memory and the model count), so it is a linear program rather than a pure min-cost flow, and the warm tier
 * adds a third choice per stretch: stay until the page cache window before the next request, then reload warm.
 *
 * With integral choices it is the exact optimum (an integer program, for small traces); its LP relaxation is a lower
 * bound on it (for large ones). Evictions in this model are free and may happen at any moment, so every online policy
 * costs at least as much. Pure: it builds the problem and reads the answer; the solver is passed in (`LpSolver`).
 */
import type { SimSettings, Trace } from "./types.js";
import { GIB } from "../../units.js";

/** A linear (or mixed-integer) problem in the sparse form HiGHS takes: minimise colCost·x + offset. */
export interface LpProblem {
  numCols: number;
  numRows: number;
  offset: number;
  colCost: Float64Array;
  colLower: Float64Array;
  colUpper: Float64Array;
  rowLower: Float64Array;
  rowUpper: Float64Array;
  matrix: {
    format: "csr";
    numRows: number;
    numCols: number;
    starts: Int32Array;
    indices: Int32Array;
    values: Float64Array;
  };
  /** 1 = integer column, 0 = continuous; absent = an LP. */
  integrality?: Int32Array;
}

export interface LpSolution {
  /** The objective including the offset. */
  objective: number;
  values: Float64Array;
}

/** Solves an `LpProblem` to optimality (MIP gap 0 when it has integer columns), or throws. */
export interface LpSolver {
  solve(problem: LpProblem): LpSolution;
}

export interface OptimumResult {
  /** Total load time of the optimum (exact) or its lower bound (relaxed), in milliseconds. */
  loadMsTotal: number;
  exact: boolean;
  /** Choices the problem had to make (stretches that may stay cached): a measure of its size. */
  choices: number;
}

/** A stretch a model may stay cached over: from request `start` up to (not including) request `end`. */
interface Stay {
  start: number;
  end: number;
  bytes: number;
  /** Load time saved by staying. */
  saving: number;
  /** The stay this one is an alternative to (the warm stay's full stay), or -1. */
  pairedWith: number;
}

/** The stays and the fixed cost of a trace: what every schedule pays, and what each stay may save. */
function stays(trace: Trace, settings: SimSettings): { stays: Stay[]; fixedMs: number } {
  const models = new Map(trace.models.map((m) => [m.key, m]));
  const times = trace.requests.map((r) => r.at);
  const lastIndex = new Map<string, number>();
  const out: Stay[] = [];
  let fixedMs = 0;
  const window = settings.warmWindowMs;
  trace.requests.forEach(({ key, at }, k) => {
    const model = models.get(key);
    if (!model) throw new Error(`trace request for unknown model ${key}`);
    const a = lastIndex.get(key);
    lastIndex.set(key, k);
    if (a === undefined) {
      fixedMs += model.loadMs;
      return;
    }
    const { memoryBytes: bytes, loadMs: cold, warmLoadMs: warm } = model;
    const gap = at - (times[a] as number);
    const warmTier = window > 0 && warm < cold;
    // Without a request in between, staying is free.
    if (k === a + 1) return;
    if (warmTier && gap <= window) {
      fixedMs += warm;
      out.push({ start: a, end: k, bytes, saving: warm, pairedWith: -1 });
      return;
    }
    fixedMs += cold;
    const full = out.length;
    out.push({ start: a, end: k, bytes, saving: cold, pairedWith: -1 });
    if (!warmTier) return;
    // Staying until `window` before the next request: the first request at or after that moment ends the stay.
    const e = firstAtOrAfter(times, at - window, a + 1);
    if (e === a + 1) {
      // No request while it waits: the warm reload is free to reach; staying all along saves only the warm cost.
      fixedMs -= cold - warm;
      (out[full] as Stay).saving = warm;
    } else if (e < k) {
      out.push({ start: a, end: e, bytes, saving: cold - warm, pairedWith: full });
    }
  });
  return { stays: out, fixedMs };
}

/** The first index ≥ `from` whose time is ≥ `t` (times ascending). */
function firstAtOrAfter(times: readonly number[], t: number, from: number): number {
  let lo = from;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((times[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The optimum as an LP (or, with `integer`, a MIP). Columns: one per stay (0..1, the fraction kept), then the memory in
 * use and the models kept at each request. Rows: the running sums (equalities), one per request and resource, and
 * "full stay + warm stay ≤ 1" per pair.
 */
export function optimumProblem(
  trace: Trace,
  settings: SimSettings,
  options: { integer: boolean },
): { problem: LpProblem; fixedMs: number; choices: number } {
  const { stays: list, fixedMs } = stays(trace, settings);
  const n = trace.requests.length;
  const sizes = new Map(trace.models.map((m) => [m.key, m.memoryBytes]));
  const resources: Array<{ coefficient: (s: Stay) => number; upper: (k: number) => number }> = [
    { coefficient: () => 1, upper: () => settings.maxModels - 1 },
  ];
  if (settings.maxMemoryBytes > 0) {
    // Scaled to GiB so the coefficients stay near 1 (better conditioned).
    resources.push({
      coefficient: (s) => s.bytes / GIB,
      upper: (k) => (settings.maxMemoryBytes - (sizes.get(trace.requests[k]?.key as string) as number)) / GIB,
    });
  }
  const stayCols = list.length;
  const numCols = stayCols + resources.length * n;
  const rows: Array<Map<number, number>> = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  const colLower = new Float64Array(numCols);
  const colUpper = new Float64Array(numCols);
  const colCost = new Float64Array(numCols);
  list.forEach((s, j) => {
    colUpper[j] = 1;
    colCost[j] = -s.saving;
  });
  resources.forEach((resource, r) => {
    const base = stayCols + r * n;
    const firstRow = rows.length;
    for (let k = 0; k < n; k++) {
      const upper = resource.upper(k);
      if (upper < 0) throw new Error(`request ${k} needs a model that can never fit the limits`);
      colUpper[base + k] = k === 0 ? 0 : upper;
      if (k === 0) continue;
      // in use at k = in use at k-1 + stays starting at k-1 - stays ending at k
      rows.push(
        new Map([
          [base + k, 1],
          [base + k - 1, -1],
        ]),
      );
      rowLower.push(0);
      rowUpper.push(0);
    }
    list.forEach((s, j) => {
      (rows[firstRow + s.start] as Map<number, number>).set(j, -resource.coefficient(s));
      (rows[firstRow + s.end - 1] as Map<number, number>).set(j, resource.coefficient(s));
    });
  });
  list.forEach((s, j) => {
    if (s.pairedWith < 0) return;
    rows.push(
      new Map([
        [j, 1],
        [s.pairedWith, 1],
      ]),
    );
    rowLower.push(-Infinity);
    rowUpper.push(1);
  });
  const starts = new Int32Array(rows.length + 1);
  let nnz = 0;
  rows.forEach((row, i) => {
    nnz += row.size;
    starts[i + 1] = nnz;
  });
  const indices = new Int32Array(nnz);
  const values = new Float64Array(nnz);
  let at = 0;
  for (const row of rows) {
    for (const [col, value] of [...row].sort((x, y) => x[0] - y[0])) {
      indices[at] = col;
      values[at++] = value;
    }
  }
  const problem: LpProblem = {
    numCols,
    numRows: rows.length,
    offset: fixedMs,
    colCost,
    colLower,
    colUpper,
    rowLower: Float64Array.from(rowLower),
    rowUpper: Float64Array.from(rowUpper),
    matrix: { format: "csr", numRows: rows.length, numCols, starts, indices, values },
  };
  if (options.integer) problem.integrality = Int32Array.from({ length: numCols }, (_, j) => (j < stayCols ? 1 : 0));
  return { problem, fixedMs, choices: stayCols };
}

/** Traces of at most this many requests get the exact optimum (the integer program solves in seconds); longer ones the LP bound. */
export const EXACT_OPTIMUM_MAX_REQUESTS = 100;

/** The optimum as `npm run bench` and `inferno cache advise` report it: exact on short traces, else the LP lower bound. */
export function optimumOrBound(trace: Trace, settings: SimSettings, solver: LpSolver): OptimumResult {
  return offlineOptimum(trace, settings, solver, { integer: trace.requests.length <= EXACT_OPTIMUM_MAX_REQUESTS });
}

/** The exact optimum (`integer: true`) or its LP lower bound of a trace's total load time. */
export function offlineOptimum(
  trace: Trace,
  settings: SimSettings,
  solver: LpSolver,
  options: { integer: boolean },
): OptimumResult {
  const { problem, choices } = optimumProblem(trace, settings, options);
  const { objective } = solver.solve(problem);
  return { loadMsTotal: objective, exact: options.integer, choices };
}
