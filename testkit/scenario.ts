/**
 * What a stress scenario is: one way of trying to break Inferno, run at two sizes. `npm run stress` runs the `full` size
 * of each and prints its figures; `npm test` runs the `bounded` size (a few seconds each) through the same code and
 * fails on any violation. A scenario returns figures to print and violations (each a sentence saying what broke);
 * zero violations is the pass condition at both sizes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Figures as printed: counts, ratios, sizes (numbers) or short notes. */
export type Figures = Record<string, number | string>;

export interface ScenarioResult {
  figures: Figures;
  /** What broke, one sentence each; empty when the scenario held. */
  violations: string[];
  /** Why the scenario (or a part of it) could not run here, e.g. mounting needs root; null when it ran in full. */
  skipped: string | null;
}

export interface Scenario<P> {
  /** The name `npm run stress -- --only NAME` takes. */
  name: string;
  /** What it does, one line (printed above its figures). */
  title: string;
  /** The size `npm run stress` runs. */
  full: P;
  /** The size the test suite runs (each well under a minute on 2 busy cores). */
  bounded: P;
  run(params: P): Promise<ScenarioResult>;
}

/** Collects figures and violations as a scenario goes. */
export class Tally {
  readonly figures: Figures = {};
  readonly violations: string[] = [];
  skipped: string | null = null;

  /** Adds `by` to a counted figure (created at 0). */
  count(name: string, by = 1): void {
    this.figures[name] = (Number(this.figures[name]) || 0) + by;
  }

  set(name: string, value: number | string): void {
    this.figures[name] = value;
  }

  /** Records a violation unless `ok`; returns `ok`. Violations beyond the first 20 are counted, not kept. */
  check(ok: boolean, what: () => string): boolean {
    if (!ok) {
      if (this.violations.length < 20) this.violations.push(what());
      else this.count("violations_not_listed");
    }
    return ok;
  }

  private phaseName: string | null = null;
  private phaseStarted = 0;

  /**
   * Starts a named phase (ending the previous one): its seconds become a figure, and with `STRESS_PROGRESS=1` it is
   * announced on stderr (for watching a long run).
   */
  phase(name: string | null): void {
    const now = performance.now();
    if (this.phaseName !== null)
      this.set(`${this.phaseName}_seconds`, Number(((now - this.phaseStarted) / 1000).toFixed(1)));
    this.phaseName = name;
    this.phaseStarted = now;
    if (name !== null && process.env.STRESS_PROGRESS === "1") process.stderr.write(`  … ${name}\n`);
  }

  skip(reason: string): void {
    this.skipped = this.skipped === null ? reason : `${this.skipped}; ${reason}`;
  }

  result(): ScenarioResult {
    return { figures: this.figures, violations: this.violations, skipped: this.skipped };
  }
}

/** Runs `fn` with a fresh temporary directory, removed afterwards whatever happens. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `inferno-stress-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Resolves with `promise`'s outcome, or with "timeout" after `ms` (the scenario counts a hang). */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ value: T } | { error: unknown } | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The seeded generator the tiny models are made with (mulberry32): the same files and schedule on every run. */
export { seededRandom } from "../src/models/gguf-writer.js";
