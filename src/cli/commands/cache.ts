/**
 * `inferno cache …`: the model cache's statistics and state. Without a running server these work on the state file
 * (`<cache_dir>/cache_state.bin.zst`) and say so: nothing is loaded in file mode, so `clear` and `evict` remove saved
 * entries (a starting server will not warm them) and `warmup` prints the plan a starting server would follow.
 */
import { type Command, Option } from "commander";
import type { CacheState } from "../../cache/persistence/types.js";
import type { CacheStats, WarmupStrategy } from "../../cache/types.js";
import { serverAddress, serverAnswers, StateFile } from "../../runtime/state-file.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, type ConfigFlagName, configFlagValues } from "../flags.js";
import { formatTable } from "../io.js";

const FLAGS: readonly ConfigFlagName[] = ["cache-dir", "models-dir"];
const STRATEGIES: WarmupStrategy[] = ["usage", "recent", "priority", "hybrid", "none"];

/** Opens the state file and tells the user (stderr) that this is file mode, and whether a server answers. */
async function openStateFile(ctx: CliContext, options: Record<string, unknown>): Promise<StateFile> {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const file = new StateFile(config);
  const address = serverAddress(config, ctx.globals.server);
  if (await serverAnswers(address)) {
    ctx.out.warn(
      `a server answers at ${address}, but this command works on the state file ${file.path} only; the server overwrites it on its next save`,
    );
  } else {
    ctx.out.info(`no server running at ${address}; read ${file.path}`);
  }
  return file;
}

function ms(value: number | null): string {
  return value === null ? "-" : `${Math.round(value)} ms`;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function printStats(ctx: CliContext, stats: CacheStats): void {
  const evictions = Object.entries(stats.evictions)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(", ");
  ctx.out.print(
    [
      `hits ${stats.hits}, misses ${stats.misses}, hit rate ${(stats.hit_rate * 100).toFixed(1)}%`,
      `loads ${stats.loads}, load failures ${stats.load_failures}, warm-ups ${stats.warmups}`,
      `evictions: ${evictions || "none"}`,
      `loaded ${stats.models_loaded} of at most ${stats.max_cached_models}, memory ${mib(stats.memory_bytes)}` +
        (stats.memory_limit_bytes > 0 ? ` of ${mib(stats.memory_limit_bytes)}` : " (no limit)"),
      `last save: ${stats.last_save.at ?? "never"}${stats.last_save.ok === false ? ` (failed: ${stats.last_save.error})` : ""}`,
      `state file: ${stats.state_file ?? "none (persist_cache = false)"}`,
    ].join("\n"),
  );
  if (stats.models.length === 0) {
    ctx.out.print("no model statistics yet");
    return;
  }
  ctx.out.print(
    "\n" +
      formatTable(
        ["model", "loaded", "pinned", "requests", "hits", "misses", "loads", "avg load", "p95 load", "per hour", "last used"],
        stats.models.map((m) => [
          m.name,
          m.loaded ? "yes" : "no",
          m.pinned ? "yes" : "no",
          String(m.requests),
          String(m.hits),
          String(m.misses),
          String(m.loads),
          ms(m.avg_load_ms),
          ms(m.p95_load_ms),
          m.frequency_per_hour.toFixed(2),
          m.last_used ?? "never",
        ]),
      ),
  );
}

function printState(ctx: CliContext, path: string, state: CacheState | null, bytes: number | null): void {
  if (!state) {
    ctx.out.print(`${path}: no state file yet`);
    return;
  }
  const c = state.counters;
  ctx.out.print(
    [
      `${path} (${bytes} bytes, saved ${new Date(state.saved_at).toISOString()})`,
      `counters: hits ${c.hits}, misses ${c.misses}, loads ${c.loads}, load failures ${c.load_failures}, warm-ups ${c.warmups}`,
      `evictions: ${Object.entries(c.evictions).map(([r, n]) => `${r} ${n}`).join(", ")}`,
    ].join("\n"),
  );
  if (state.models.length === 0) return;
  ctx.out.print(
    "\n" +
      formatTable(
        ["model", "key", "size", "mtime", "requests", "memory", "priority", "pinned"],
        state.models.map((m) => [
          m.name,
          m.key,
          String(m.fingerprint.size),
          new Date(m.fingerprint.mtimeMs).toISOString(),
          String(m.usage.requests),
          m.metadata.memory_bytes === null ? "-" : mib(m.metadata.memory_bytes),
          m.priority.toFixed(2),
          m.pinned ? "yes" : "no",
        ]),
      ),
  );
}

export function registerCache(program: Command, ctx: CliContext): void {
  const cache = program.command("cache").description("model cache statistics and state (the state file when no server runs)");

  addConfigFlags(cache.command("stats").description("print cache statistics (SPEC fields with --json)"), FLAGS).action(
    async (options: Record<string, unknown>) => {
      const stats = await (await openStateFile(ctx, options)).stats();
      if (ctx.out.json) ctx.out.printJson(stats);
      else printStats(ctx, stats);
    },
  );

  addConfigFlags(cache.command("inspect").description("print the decoded state file"), FLAGS).action(
    async (options: Record<string, unknown>) => {
      const file = await openStateFile(ctx, options);
      const { state, bytes } = await file.inspect();
      if (ctx.out.json) ctx.out.printJson({ state_file: file.path, bytes, state });
      else printState(ctx, file.path, state, bytes);
    },
  );

  addConfigFlags(cache.command("save").description("rewrite the state file in the current format"), FLAGS).action(
    async (options: Record<string, unknown>) => {
      const file = await openStateFile(ctx, options);
      const saved = await file.save();
      if (ctx.out.json) ctx.out.printJson({ state_file: file.path, ...saved });
      else ctx.out.print(`saved ${saved.models} model entries (${saved.bytes} bytes) to ${file.path}`);
    },
  );

  addConfigFlags(
    cache
      .command("clear")
      .description("remove saved model entries (pinned ones only with --force); --stats also resets the counters")
      .option("--model <name>", "only this model")
      .option("--force", "also pinned models")
      .option("--stats", "also reset the statistics counters"),
    FLAGS,
  ).action(async (options: { model?: string; force?: boolean; stats?: boolean } & Record<string, unknown>) => {
    const file = await openStateFile(ctx, options);
    const report = await file.clear({ model: options.model, force: options.force, stats: options.stats });
    if (ctx.out.json) ctx.out.printJson(report);
    else {
      ctx.out.print(report.removed.length > 0 ? `removed: ${report.removed.join(", ")}` : "no entries removed");
      if (report.statisticsReset) ctx.out.print("statistics reset");
    }
  });

  addConfigFlags(
    cache
      .command("evict")
      .description("remove a model's saved entry so a starting server does not warm it")
      .argument("<name>", "model name"),
    FLAGS,
  ).action(async (name: string, options: Record<string, unknown>) => {
    const file = await openStateFile(ctx, options);
    const removed = await file.evict(name);
    if (ctx.out.json) ctx.out.printJson({ removed });
    else ctx.out.print(`removed the entry of ${removed}: a starting server will not warm it`);
  });

  addConfigFlags(
    cache
      .command("warmup")
      .description("show the warm-up plan a starting server would follow (nothing is loaded without a server)")
      .argument("[names...]", "models to warm, in this order (default: ranked by the strategy)")
      .addOption(new Option("--strategy <strategy>", "ranking strategy (default: cache.warmup_strategy)").choices(STRATEGIES)),
    FLAGS,
  ).action(async (names: string[], options: { strategy?: WarmupStrategy } & Record<string, unknown>) => {
    const file = await openStateFile(ctx, options);
    const report = await file.warmupPlan({ models: names.length > 0 ? names : undefined, strategy: options.strategy });
    if (ctx.out.json) {
      ctx.out.printJson(report);
      return;
    }
    const by = report.strategy === "given" ? "as given" : `strategy ${report.strategy}`;
    ctx.out.print(`warm-up plan (${by}); nothing was loaded — this is what a starting server would load, in order:`);
    ctx.out.print(report.plan.length > 0 ? report.plan.map((name, i) => `  ${i + 1}. ${name}`).join("\n") : "  (nothing)");
    if (report.skipped.length > 0) {
      ctx.out.print(`skipped:\n${report.skipped.map((s) => `  ${s.name}: ${s.reason}`).join("\n")}`);
    }
  });
}
