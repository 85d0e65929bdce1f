/** What `inferno ps` (also `inferno cache ps`) does: the models a running server holds, like `ollama ps`. */
import type { LoadedModelInfo } from "../../cache/types.js";
import type { CliContext } from "../context.js";
import { formatTable } from "../io.js";
import { findServer } from "../live.js";
import { formatBytes } from "../../units.js";

/** `in 4 minutes`, `in 1 hour`: how long until an ISO time, rounded to the largest whole unit. */
export function formatUntil(iso: string, now: number): string {
  const seconds = Math.max(0, Math.floor((Date.parse(iso) - now) / 1000));
  const [amount, unit] =
    seconds >= 86_400
      ? [Math.floor(seconds / 86_400), "day"]
      : seconds >= 3600
        ? [Math.floor(seconds / 3600), "hour"]
        : seconds >= 60
          ? [Math.floor(seconds / 60), "minute"]
          : [seconds, "second"];
  return `in ${amount} ${unit}${amount === 1 ? "" : "s"}`;
}

/** What the UNTIL column says: when an idle model unloads, or why it does not. */
export function untilOf(model: LoadedModelInfo, now: number): string {
  if (model.state === "loading") return "loading";
  if (model.state === "unloading") return "stopping";
  if (model.leases > 0) return `in use (${model.leases})`;
  if (model.expires_at) return formatUntil(model.expires_at, now);
  return model.pinned ? "forever (pinned)" : "forever";
}

/** Prints the resident models as `inferno ps` does. */
export function printModels(ctx: CliContext, models: LoadedModelInfo[]): void {
  const { out } = ctx;
  if (out.json) {
    out.printJson(models);
    return;
  }
  const now = Date.now();
  // PARALLEL: the sequences a GGUF model serves at once (`backend.parallel`, auto resolved for its load; `-` for ONNX).
  // PID: the model host's process (`-` for a model running inside the server, isolation = "in-process").
  const rows = models.map((m) => [
    m.name,
    formatBytes(m.size_bytes),
    formatBytes(m.memory_bytes),
    m.sequences === null ? "-" : String(m.sequences),
    m.pid === null ? "-" : String(m.pid),
    untilOf(m, now),
  ]);
  out.print(formatTable(["NAME", "SIZE", "MEMORY", "PARALLEL", "PID", "UNTIL"], rows));
}

/** Runs `ps`: asks the running server; without one, nothing is loaded anywhere, and it says so. */
export async function runPs(ctx: CliContext): Promise<void> {
  const config = await ctx.loadConfig();
  const { server, url } = await findServer(ctx, config);
  if (!server) {
    ctx.out.info(
      `no server running at ${url}: no model is loaded (models stay loaded only inside \`${ctx.command("serve")}\`)`,
    );
    if (ctx.out.json) ctx.out.printJson([]);
    return;
  }
  ctx.out.info(`using the running server at ${url}`);
  printModels(ctx, await server.client.loadedModels());
}
