/**
 * `inferno cache …`'s command tree: the model cache's statistics and state, on the running server or, without one, on
 * the state file. What each command does is in ../actions/cache.ts (events: ../actions/cache-events.ts), imported when
 * it runs.
 */
import { type Command, Option } from "commander";
import type { WarmupStrategy } from "../../cache/types.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, COMMAND_FLAGS, keyReference } from "../flags.js";
import { addPsCommand } from "./ps.js";

const FLAGS = COMMAND_FLAGS.cache;
const actions = () => import("../actions/cache.js");

export function registerCache(program: Command, ctx: CliContext): void {
  const cache = program
    .command("cache")
    .description("the model cache: the running server's, or the state file when no server runs");

  addConfigFlags(cache.command("stats").description("print cache statistics (SPEC fields with --json)"), FLAGS).action(
    async (options: Record<string, unknown>) => (await actions()).statsCommand(ctx, options),
  );

  addConfigFlags(cache.command("inspect").description("print the decoded state file"), FLAGS).action(
    async (options: Record<string, unknown>) => (await actions()).inspectCommand(ctx, options),
  );

  addConfigFlags(
    cache
      .command("save")
      .description("save the cache state now (the server's; without one, rewrite the file in the current format)"),
    FLAGS,
  ).action(async (options: Record<string, unknown>) => (await actions()).saveCommand(ctx, options));

  addConfigFlags(
    cache
      .command("clear")
      .description(
        "unload every model, or one (pinned ones only with --force); without a server, remove saved entries; --stats also resets the statistics",
      )
      .option("--model <name>", "only this model")
      .option("--force", "also pinned models")
      .option("--stats", "also reset the statistics counters"),
    FLAGS,
  ).action(async (options: { model?: string; force?: boolean; stats?: boolean } & Record<string, unknown>) =>
    (await actions()).clearCommand(ctx, options),
  );

  addConfigFlags(
    cache
      .command("evict")
      .description(
        "unload a model from the running server (a pinned one only with --force); without a server, remove its saved entry so a starting server does not warm it",
      )
      .argument("<name>", "model name")
      .option("--force", "also a pinned model"),
    FLAGS,
  ).action(async (name: string, options: { force?: boolean } & Record<string, unknown>) =>
    (await actions()).evictCommand(ctx, name, options),
  );

  addConfigFlags(
    cache
      .command("warmup")
      .description("load models now on the running server; without one, show the plan a starting server would follow")
      .argument("[names...]", "models to warm, in this order (default: ranked by the strategy)")
      .addOption(
        new Option("--strategy <strategy>", "ranking strategy (default: cache.warmup_strategy)").choices(
          keyReference("cache.warmup_strategy").choices ?? [],
        ),
      ),
    FLAGS,
  ).action(async (names: string[], options: { strategy?: WarmupStrategy } & Record<string, unknown>) =>
    (await actions()).warmupCommand(ctx, names, options),
  );

  addConfigFlags(
    cache
      .command("advise")
      .description(
        "replay the logged requests under every eviction policy and other max_cached_models / max_memory_mb values; print what each would have cost and one recommended change (in a fleet, also how many nodes or how much memory per node the fleet's traffic needs)",
      )
      .option(
        "--target-hit-rate <rate>",
        "in a fleet: the hit rate (above 0, at most 1) the fleet's recorded traffic should reach (default 0.9)",
      ),
    FLAGS,
  ).action(async (options: Record<string, unknown>) => (await actions()).adviseCommand(ctx, options));

  cache
    .command("events")
    .alias("watch")
    .description(
      "print the running server's cache events as they happen (loads, hits, evictions, saves; --json: NDJSON)",
    )
    .action(async () => (await import("../actions/cache-events.js")).watchEvents(ctx));

  addPsCommand(cache, ctx, "inferno ps");
}
