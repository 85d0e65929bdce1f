/**
 * The LP/MIP solver the cache simulator's offline optimum uses: HiGHS compiled to WebAssembly (the `highs` package,
 * shipped with its .wasm; nothing is downloaded). Loaded once, on first use (~0.1 s).
 */
import highsModule from "highs";
import type { LpProblem, LpSolution, LpSolver } from "../cache/sim/optimum.js";

// The package's types describe its CommonJS face; under ESM its default export is the loader itself.
type Loader = typeof highsModule.default;
const loadHighs = highsModule as unknown as Loader;
let loading: ReturnType<Loader> | null = null;

/** A solver backed by HiGHS; each `solve` builds, runs and disposes one model. */
export async function highsSolver(): Promise<LpSolver> {
  loading ??= loadHighs();
  const highs = await loading;
  return {
    solve(problem: LpProblem): LpSolution {
      const { offset, ...data } = problem;
      const model = highs.createModel({ ...data, offset });
      try {
        model.options.set({ output_flag: false, mip_rel_gap: 0, mip_abs_gap: 0 });
        model.run();
        const status = model.getModelStatus();
        if (status !== highs.constants.modelStatus.optimal) {
          throw new Error(`the LP solver stopped without an optimum (HiGHS model status ${status})`);
        }
        return { objective: model.getObjectiveValue(), values: model.getSolution().colValue };
      } finally {
        model.dispose();
      }
    },
  };
}
