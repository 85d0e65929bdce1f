/**
 * The one runner of `npm run bench` and `npm run stress`: the command line (`--only NAME[,NAME]`, `--quick`), the
 * sections run in order, each timed with the load average around it and announced on one progress line, and the merge
 * of what ran into a results JSON file (the sections that did not run keep what they had).
 *
 * What a section returns and how its results file is shaped is each tool's own: the runner hands back, per section,
 * its result and its `SectionRun`.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname } from "node:path";
import { writeFileAtomic } from "../src/fs/atomic-write.js";
import { GIB } from "../src/units.js";
import { freshSeed } from "./stats.js";

export interface RunnerSection<R> {
  /** The name `--only` takes. */
  name: string;
  run(options: SectionOptions): Promise<R>;
}

/** What every section is run with. */
export interface SectionOptions {
  quick: boolean;
  /** Seeds the per-round shuffle of variant order (`roundOrders`); printed with the run, `--seed N` replays it. */
  seed: number;
}

/** What the command line asked for. */
export interface Selection {
  /** Smaller sizes: fewer rounds, shorter traces, the bounded scenarios. */
  quick: boolean;
  /** The sections named by `--only`, in the runner's order; every section without it. */
  only: string[] | undefined;
  /** `--seed N`, else a fresh one. */
  seed: number;
}

/**
 * `--quick` (and its other spellings in `quickFlags`, e.g. stress's `--bounded`), `--only NAME[,NAME]` and `--seed N`.
 * An unknown or missing name, or a seed that is not a non-negative integer, ends the process with exit code 2.
 */
export function parseSelection(
  tool: string,
  argv: readonly string[],
  names: readonly string[],
  quickFlags: readonly string[] = [],
): Selection {
  const quick = ["--quick", ...quickFlags].some((flag) => argv.includes(flag));
  const seedAt = argv.indexOf("--seed");
  const seed = seedAt < 0 ? freshSeed() : Number(argv[seedAt + 1]);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    console.error(`${tool}: --seed takes a non-negative integer; got ${JSON.stringify(argv[seedAt + 1] ?? "")}`);
    process.exit(2);
  }
  const at = argv.indexOf("--only");
  if (at < 0) return { quick, only: undefined, seed };
  const given = argv[at + 1] ?? "";
  const only = given.split(",").filter((name) => name !== "");
  // A name also selects its family: `fleet` runs `fleet` and `fleet-sim`.
  const selects = (wanted: string, name: string) => name === wanted || name.startsWith(`${wanted}-`);
  if (only.length === 0 || only.some((wanted) => !names.some((name) => selects(wanted, name)))) {
    console.error(
      `${tool}: --only takes one or more of ${names.join(", ")} (comma-separated; a name also selects NAME-*); got ${JSON.stringify(given)}`,
    );
    process.exit(2);
  }
  return { quick, only: names.filter((name) => only.some((wanted) => selects(wanted, name))), seed };
}

/** The 1-minute load average, to two decimals: how busy the (shared) machine was. */
export function loadAverage(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

export interface Machine {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
}

export function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / GIB),
    node: process.version,
  };
}

/** When and how one section last ran. */
export interface SectionRun {
  date: string;
  quick: boolean;
  /** The seed of its variant order (`--seed` replays it). */
  seed: number;
  seconds: number;
  /** 1-minute load average before and after: how busy the (shared) machine was. */
  loadavg: { before: number; after: number };
}

/** One invocation: which sections it ran and how long it took in total. */
export interface RunSummary {
  date: string;
  quick: boolean;
  seed: number;
  sections: string[];
  /** Sections that threw, with the message: the others still ran (absent when none did). */
  failed?: Array<{ section: string; error: string }>;
  seconds: number;
  loadavg: { before: number; after: number };
}

const secondsSince = (started: number) => Math.round((performance.now() - started) / 100) / 10;

/**
 * Runs the selected sections in order. Each is announced on stderr (`bench: cache (quick), seed 42, load average 1.2 ... 14.3 s`)
 * and timed; `done` gets its result and run as soon as it ends (so a tool can save after each section, and an
 * interrupted run keeps what it finished).
 */
export async function runSections<R>(
  tool: string,
  sections: ReadonlyArray<RunnerSection<R>>,
  selection: Selection,
  done: (name: string, result: R, run: SectionRun) => Promise<void> | void,
): Promise<RunSummary> {
  const started = performance.now();
  const date = new Date().toISOString();
  const before = loadAverage();
  const ran: string[] = [];
  const failed: NonNullable<RunSummary["failed"]> = [];
  for (const section of sections) {
    if (selection.only !== undefined && !selection.only.includes(section.name)) continue;
    const sectionDate = new Date().toISOString();
    const sectionBefore = loadAverage();
    const sectionStarted = performance.now();
    process.stderr.write(
      `${tool}: ${section.name}${selection.quick ? " (quick)" : ""}, seed ${selection.seed}, load average ${sectionBefore} ... `,
    );
    let result: R;
    try {
      result = await section.run({ quick: selection.quick, seed: selection.seed });
    } catch (error) {
      // One section that cannot run (a missing build, a tool not installed) costs its own figures, not the others'.
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`failed after ${secondsSince(sectionStarted)} s: ${message}\n`);
      failed.push({ section: section.name, error: message });
      continue;
    }
    const seconds = secondsSince(sectionStarted);
    process.stderr.write(`${seconds} s\n`);
    ran.push(section.name);
    await done(section.name, result, {
      date: sectionDate,
      quick: selection.quick,
      seed: selection.seed,
      seconds,
      loadavg: { before: sectionBefore, after: loadAverage() },
    });
  }
  return {
    date,
    quick: selection.quick,
    seed: selection.seed,
    sections: ran,
    ...(failed.length > 0 ? { failed } : {}),
    seconds: secondsSince(started),
    loadavg: { before, after: loadAverage() },
  };
}

async function readJson(file: string): Promise<unknown> {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(await readFile(file, "utf8"));
  } catch {
    return null;
  }
}

/**
 * Reads a results file (null when there is none or it does not parse), lets `merge` build the next content from it,
 * and writes that whole (the shared atomic write), so a crash leaves the previous results.
 */
export async function mergeResultsFile<T>(file: string, merge: (previous: unknown) => T): Promise<T> {
  const next = merge(await readJson(file));
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

/**
 * Per section: `previous`'s entries of the sections that did not run (`ran`, by default those in `fresh`), then the
 * fresh ones.
 */
export function keepOthers<V>(
  previous: Record<string, V> | undefined,
  fresh: Record<string, V>,
  ran: readonly string[] = Object.keys(fresh),
): Record<string, V> {
  return {
    ...Object.fromEntries(Object.entries(previous ?? {}).filter(([name]) => !ran.includes(name))),
    ...fresh,
  };
}
