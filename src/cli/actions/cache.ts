/**
 * What `inferno cache …` does (its command tree is in ../commands/cache.ts): the model cache's statistics and state.
 * With a running server (address from `--server` or `[server]`) the commands act on its live cache; without one they
 * work on the state file (`<cache_dir>/cache_state.bin.zst`), and each says which it used. Nothing is loaded in file
 * mode, so there `clear` and `evict` remove saved entries (a starting server will not warm them) and `warmup` prints
 * the plan a starting server would follow. `inspect` always decodes the file.
 */
import type { CacheState } from "../../cache/persistence/types.js";
import type { AdviceReport, AdviceRow, FleetAdvice } from "../../cache/sim/advise.js";
import type { CacheStats, PromptCacheStats, WarmupResult, WarmupStrategy } from "../../cache/types.js";
import { iso } from "../../cache/state-view.js";
import { promptCacheText } from "../../cache/prompt-figures.js";
import type { FleetStats, InfernoClient } from "../../runtime/index.js";
import type { InfernoConfig } from "../../config/index.js";
import type { StateFile } from "../../runtime/state-file.js";
import { ServerUnavailable, UsageError } from "../../errors/index.js";
import type { CliContext } from "../context.js";
import { configFlagValues } from "../flag-values.js";
import { COMMAND_FLAGS } from "../flags.js";
import { formatTable } from "../io.js";
import { findServer } from "../live.js";
import { formatBytes } from "../../units.js";

const FLAGS = COMMAND_FLAGS.cache;

/** Where a command acts: the running server's live cache, or the state file when no server answers. */
type Target = { kind: "server"; client: InfernoClient; url: string } | { kind: "file"; file: StateFile };

/** The state file, its code (zstd, locks) imported only by the commands that read it. */
async function stateFile(ctx: CliContext, config: InfernoConfig): Promise<StateFile> {
  const { StateFile } = await import("../../runtime/state-file.js");
  return new StateFile(config, { environment: ctx.environment() });
}

/** Finds the running server, or falls back to the state file, and tells the user (stderr) which it used. */
async function connect(ctx: CliContext, options: Record<string, unknown>): Promise<Target> {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const { server, url } = await findServer(ctx, config);
  if (server) {
    ctx.out.info(`using the running server at ${url}`);
    return { kind: "server", ...server };
  }
  const file = await stateFile(ctx, config);
  ctx.out.info(`no server running at ${url}; read ${file.path}`);
  return { kind: "file", file };
}

/** `inspect` decodes the file even while a server runs, and warns that the server's live state may be newer. */
async function openStateFile(ctx: CliContext, options: Record<string, unknown>): Promise<StateFile> {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const file = await stateFile(ctx, config);
  const { server, url } = await findServer(ctx, config);
  if (server) {
    ctx.out.warn(
      `a server runs at ${url}: this is the state file ${file.path} as last saved; its live state may be newer`,
    );
  } else {
    ctx.out.info(`no server running at ${url}; read ${file.path}`);
  }
  return file;
}

function printWarmup(ctx: CliContext, result: WarmupResult): void {
  if (ctx.out.json) {
    ctx.out.printJson(result);
    return;
  }
  ctx.out.print(result.loaded.length > 0 ? `loaded: ${result.loaded.join(", ")}` : "nothing loaded");
  for (const { name, reason } of result.skipped) ctx.out.print(`skipped ${name}: ${reason}`);
  for (const { name, error } of result.failed) ctx.out.print(`failed ${name}: ${error}`);
  if (result.failed.length > 0) ctx.exitCode = 1;
}

function ms(value: number | null): string {
  return value === null ? "-" : `${Math.round(value)} ms`;
}

/** The prompt cache since the server started: generations that reused a prefix, tokens saved, saved prefixes. */
function promptCacheLine(p: PromptCacheStats): string {
  return `prompt cache (since start): ${promptCacheText(p)}`;
}

/** A fleet's figures: its live nodes and its merged usage, after the node's own. */
function printFleetStats(ctx: CliContext, fleet: FleetStats): void {
  const usage = fleet.usage;
  ctx.out.print(
    [
      `\nfleet (${fleet.redis}): ${fleet.status}, this node ${fleet.node_id}, ${fleet.nodes.length} live node(s)` +
        (fleet.pending_deltas > 0 ? `, ${fleet.pending_deltas} usage delta(s) waiting for Redis` : ""),
      usage
        ? `fleet usage: hits ${usage.hits}, misses ${usage.misses}, hit rate ${(usage.hit_rate * 100).toFixed(1)}%, ` +
          `loads ${usage.loads}, load failures ${usage.load_failures}`
        : "fleet usage: not readable now (Redis unreachable) or nothing saved yet",
    ].join("\n"),
  );
  ctx.out.print(
    formatTable(
      ["node", "loaded", "loading", "free slots", "memory", "req/min", "draining"],
      fleet.nodes.map((n) => [
        n.id,
        `${n.models_loaded}/${n.max_cached_models}`,
        String(n.loading),
        String(n.load_slots),
        formatBytes(n.memory_bytes),
        String(n.rpm),
        n.draining ? "yes" : "no",
      ]),
    ),
  );
  if (usage && usage.models.length > 0) {
    ctx.out.print(
      "\n" +
        formatTable(
          ["model (fleet)", "requests", "hits", "misses", "loads"],
          usage.models.map((m) => [m.name, String(m.requests), String(m.hits), String(m.misses), String(m.loads)]),
        ),
    );
  }
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
      `loaded ${stats.models_loaded} of at most ${stats.max_cached_models}, memory ${formatBytes(stats.memory_bytes)}` +
        (stats.memory_limit_bytes > 0 ? ` of ${formatBytes(stats.memory_limit_bytes)}` : " (no limit)"),
      `last save: ${stats.last_save.at ?? "never"}${stats.last_save.ok === false ? ` (failed: ${stats.last_save.error})` : ""}`,
      `state file: ${stats.state_file ?? "none (persist_cache = false)"}`,
      ...(stats.prompt_cache ? [promptCacheLine(stats.prompt_cache)] : []),
    ].join("\n"),
  );
  if (stats.models.length === 0) {
    ctx.out.print("no model statistics yet");
    return;
  }
  ctx.out.print(
    "\n" +
      formatTable(
        [
          "model",
          "loaded",
          "pinned",
          "requests",
          "hits",
          "misses",
          "loads",
          "avg load",
          "p95 load",
          "per hour",
          "last used",
        ],
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

function seconds(value: number): string {
  return value >= 100 ? `${value.toFixed(0)} s` : `${value.toFixed(1)} s`;
}

function duration(totalSeconds: number): string {
  if (totalSeconds < 120) return `${totalSeconds.toFixed(0)} s`;
  if (totalSeconds < 7200) return `${(totalSeconds / 60).toFixed(0)} min`;
  if (totalSeconds < 172_800) return `${(totalSeconds / 3600).toFixed(1)} h`;
  return `${(totalSeconds / 86_400).toFixed(1)} days`;
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

/** A row's setting, as the configuration spells it: only what differs from the current settings. */
function settingOf(row: AdviceRow, report: AdviceReport): string {
  const { current } = report;
  const memory = (mib: number) => (mib === 0 ? "no memory limit" : `max_memory_mb = ${mib}`);
  if (row.current)
    return `current: ${current.eviction_policy}, max_cached_models = ${current.max_cached_models}, ${memory(current.max_memory_mb)}`;
  if (row.varies === "eviction_policy")
    return `eviction_policy = ${row.eviction_policy}${row.settable ? "" : " (another runner's rule)"}`;
  if (row.varies === "max_cached_models") return `max_cached_models = ${row.max_cached_models}`;
  return memory(row.max_memory_mb);
}

/** The advice as a table: each setting's hit rate and load time over the log, the current one marked, then the one change advised. */
function printAdvice(ctx: CliContext, report: AdviceReport): void {
  const { log } = report;
  const current = report.rows.find((r) => r.current);
  if (!current) {
    // A fleet node that served too little itself: only the fleet's part answers.
    for (const note of report.notes) ctx.out.print(`note: ${note}`);
    if (report.fleet) printFleetAdvice(ctx, report.fleet);
    return;
  }
  const perDay = (r: AdviceRow) => ((current.load_seconds - r.load_seconds) * 86_400) / log.span_seconds;
  ctx.out.print(
    `request log: ${log.requests} requests for ${log.models} model(s) over ${duration(log.span_seconds)} (${log.first} to ${log.last}); ` +
      `the cache had ${percent(log.observed.hit_rate)} hits (${log.observed.coalesced} joined a load) and ${seconds(log.observed.load_seconds)} of loading`,
  );
  const rows = report.rows.map((r) => [
    `${r.current ? "* " : "  "}${settingOf(r, report)}`,
    percent(r.hit_rate),
    String(r.loads),
    seconds(r.load_seconds),
    r.current ? "-" : `${perDay(r) >= 0 ? "" : "+"}${seconds(Math.abs(perDay(r)))}`,
  ]);
  const optimum = report.optimum;
  if (optimum) {
    rows.push([
      `  optimum at the current limits (${optimum.exact ? "exact" : "LP lower bound"})`,
      "-",
      "-",
      seconds(optimum.load_seconds),
      `${seconds(((current.load_seconds - optimum.load_seconds) * 86_400) / log.span_seconds)} at most`,
    ]);
  }
  ctx.out.print("\n" + formatTable(["setting (replayed)", "hit rate", "loads", "load time", "saved per day"], rows));
  const advice = report.recommendation;
  ctx.out.print(
    advice
      ? `\nrecommended: set ${advice.key} = ${advice.to} (now ${advice.from}): ${seconds(advice.load_seconds_saved)} less loading over the log, ` +
          `about ${seconds(advice.seconds_saved_per_day)} a day at this pace (hit rate ${percent(advice.hit_rate)})`
      : "\nrecommended: keep the current settings; no change tried would have saved loading time",
  );
  for (const note of report.notes) ctx.out.print(`note: ${note}`);
  if (report.fleet) printFleetAdvice(ctx, report.fleet);
}

/** The fleet's part: its merged log through the fleet simulator at each size, then what the target needs. */
function printFleetAdvice(ctx: CliContext, fleet: FleetAdvice): void {
  const { log, current } = fleet;
  ctx.out.print(
    `\nfleet: ${log.requests} requests for ${log.models} model(s) over ${duration(log.span_seconds)} (${log.first} to ${log.last}), replayed through the fleet simulator`,
  );
  const rows = fleet.rows.map((r) => [
    `${r.varies === "current" ? "* " : "  "}${r.nodes} node(s) of ${r.max_cached_models} slot(s), ${r.max_memory_mb} MiB`,
    percent(r.hit_rate),
    String(r.loads),
    seconds(r.load_seconds),
    String(r.forwards),
  ]);
  ctx.out.print(formatTable(["fleet size (replayed)", "hit rate", "loads", "load time", "forwarded"], rows));
  const target = percent(fleet.target_hit_rate);
  ctx.out.print(
    fleet.nodes_needed !== null
      ? `for a hit rate of ${target}: ${fleet.nodes_needed} node(s) of this size (now ${current.nodes})`
      : `for a hit rate of ${target}: no node count replayed reaches it (best ${percent(fleet.best_hit_rate)}: each model's first request is a miss whatever the size)`,
  );
  ctx.out.print(
    fleet.max_memory_mb_needed !== null
      ? `  or, with ${current.nodes} node(s): ${fleet.max_memory_mb_needed} MiB per node (now ${current.max_memory_mb} MiB)`
      : `  or, with ${current.nodes} node(s): no memory per node replayed reaches it`,
  );
  for (const note of fleet.notes) ctx.out.print(`note: fleet: ${note}`);
}

function requestLogLine(state: CacheState): string {
  const at = state.request_log?.at ?? [];
  if (at.length === 0) return "request log: empty";
  return `request log: ${at.length} requests, ${iso(at[0] as number)} to ${iso(at[at.length - 1] as number)} (inferno cache advise replays them)`;
}

function printState(ctx: CliContext, path: string, state: CacheState | null, bytes: number | null): void {
  if (!state) {
    ctx.out.print(`${path}: no state file yet`);
    return;
  }
  const c = state.counters;
  ctx.out.print(
    [
      `${path} (${bytes} bytes, saved ${iso(state.saved_at) ?? "at an invalid time"})`,
      `counters: hits ${c.hits}, misses ${c.misses}, loads ${c.loads}, load failures ${c.load_failures}, warm-ups ${c.warmups}`,
      `evictions: ${Object.entries(c.evictions)
        .map(([r, n]) => `${r} ${n}`)
        .join(", ")}`,
      requestLogLine(state),
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
          iso(m.fingerprint.mtimeMs) ?? "-",
          String(m.usage.requests),
          m.metadata.memory_bytes === null ? "-" : formatBytes(m.metadata.memory_bytes),
          m.priority.toFixed(2),
          m.pinned ? "yes" : "no",
        ]),
      ),
  );
}

export async function statsCommand(ctx: CliContext, options: Record<string, unknown>): Promise<void> {
  const target = await connect(ctx, options);
  const stats = target.kind === "server" ? await target.client.stats() : await target.file.stats();
  if (ctx.out.json) ctx.out.printJson(stats);
  else {
    printStats(ctx, stats);
    const { fleet } = stats as { fleet?: FleetStats };
    if (fleet) printFleetStats(ctx, fleet);
  }
}

export async function inspectCommand(ctx: CliContext, options: Record<string, unknown>): Promise<void> {
  const file = await openStateFile(ctx, options);
  const { state, bytes } = await file.inspect();
  if (ctx.out.json) ctx.out.printJson({ state_file: file.path, bytes, state });
  else printState(ctx, file.path, state, bytes);
}

export async function saveCommand(ctx: CliContext, options: Record<string, unknown>): Promise<void> {
  const target = await connect(ctx, options);
  if (target.kind === "server") {
    const saved = await target.client.save();
    if (ctx.out.json) ctx.out.printJson(saved);
    else if (saved.ok === false)
      throw new ServerUnavailable(`the server could not save the cache state: ${saved.error}`);
    else ctx.out.print(`the server saved the cache state (${saved.bytes} bytes)`);
    return;
  }
  const saved = await target.file.save();
  if (ctx.out.json) ctx.out.printJson({ state_file: target.file.path, ...saved });
  else ctx.out.print(`saved ${saved.models} model entries (${saved.bytes} bytes) to ${target.file.path}`);
}

export async function clearCommand(
  ctx: CliContext,
  options: { model?: string; force?: boolean; stats?: boolean } & Record<string, unknown>,
): Promise<void> {
  const request = { model: options.model, force: options.force, stats: options.stats };
  const target = await connect(ctx, options);
  if (target.kind === "server") {
    const unloaded = await target.client.clear(request);
    if (ctx.out.json) ctx.out.printJson({ unloaded });
    else ctx.out.print(unloaded.length > 0 ? `unloaded: ${unloaded.join(", ")}` : "no model was loaded");
    if (options.stats && !ctx.out.json) ctx.out.print("statistics reset");
    return;
  }
  const report = await target.file.clear(request);
  if (ctx.out.json) ctx.out.printJson(report);
  else {
    ctx.out.print(report.removed.length > 0 ? `removed: ${report.removed.join(", ")}` : "no entries removed");
    if (report.statisticsReset) ctx.out.print("statistics reset");
  }
}

export async function evictCommand(
  ctx: CliContext,
  name: string,
  options: { force?: boolean } & Record<string, unknown>,
): Promise<void> {
  const target = await connect(ctx, options);
  if (target.kind === "server") {
    const unloaded = await target.client.evict(name, { force: options.force });
    if (ctx.out.json) ctx.out.printJson({ name, unloaded });
    else ctx.out.print(unloaded ? `unloaded ${name}` : `${name} was not loaded`);
    return;
  }
  const removed = await target.file.evict(name, { force: options.force });
  if (ctx.out.json) ctx.out.printJson({ removed });
  else ctx.out.print(`removed the entry of ${removed}: a starting server will not warm it`);
}

export async function warmupCommand(
  ctx: CliContext,
  names: string[],
  options: { strategy?: WarmupStrategy } & Record<string, unknown>,
): Promise<void> {
  const request = { models: names.length > 0 ? names : undefined, strategy: options.strategy };
  const target = await connect(ctx, options);
  if (target.kind === "server") {
    printWarmup(ctx, await target.client.warmup(request));
    return;
  }
  const report = await target.file.warmupPlan(request);
  if (ctx.out.json) {
    ctx.out.printJson(report);
    return;
  }
  const by = report.strategy === "given" ? "as given" : `strategy ${report.strategy}`;
  ctx.out.print(`warm-up plan (${by}); nothing was loaded — this is what a starting server would load, in order:`);
  ctx.out.print(
    report.plan.length > 0 ? report.plan.map((name, i) => `  ${i + 1}. ${name}`).join("\n") : "  (nothing)",
  );
  if (report.skipped.length > 0) {
    ctx.out.print(`skipped:\n${report.skipped.map((s) => `  ${s.name}: ${s.reason}`).join("\n")}`);
  }
}

/** `--target-hit-rate R`: above 0, at most 1. */
function targetHitRate(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const rate = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !(rate > 0 && rate <= 1)) {
    throw new UsageError(`--target-hit-rate must be a number above 0 and at most 1, found ${JSON.stringify(value)}`);
  }
  return rate;
}

export async function adviseCommand(ctx: CliContext, options: Record<string, unknown>): Promise<void> {
  const rate = targetHitRate(options.targetHitRate);
  const target = await connect(ctx, options);
  const report = target.kind === "server" ? await target.client.advise(rate) : await target.file.advise();
  if (rate !== undefined && !report.fleet) {
    ctx.out.info("--target-hit-rate applies to a fleet: this answer has no fleet part (no server in a fleet answered)");
  }
  if (ctx.out.json) ctx.out.printJson(report);
  else printAdvice(ctx, report);
}
