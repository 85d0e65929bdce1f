/**
 * What `inferno fleet status` and `inferno fleet events` do. Status asks the running server (`GET /v1/fleet`, which
 * reads Redis); events read the fleet's event stream in Redis directly, so they need `fleet.redis_url` in the
 * configuration and no server, and resume with `--since <id>`.
 */
import { ServerUnavailable } from "../../errors/index.js";
import { fleetEvents, fleetOf } from "../../runtime/fleet-events.js";
import type { FleetView } from "../../runtime/client.js";
import type { CliContext } from "../context.js";
import { formatTable } from "../io.js";
import { findServer } from "../live.js";
import { formatBytes } from "../../units.js";
import { eventLine } from "./cache-events.js";

const clock = (iso: string | null) => (iso === null ? "-" : iso.slice(11, 19));

/** The fleet as tables: nodes, models and their copies, the warm-up plan. */
export function formatFleet(view: FleetView): string {
  const leader = view.leader.node === null ? "no leader" : `leader ${view.leader.node} (epoch ${view.leader.epoch})`;
  const lines = [`fleet ${view.fleet} on ${view.redis}: ${view.nodes.length} node(s), ${leader}`, ""];
  lines.push(
    formatTable(
      ["NODE", "HEALTH", "MEMORY", "MODELS", "LOADING", "RPM", "URL"],
      view.nodes.map((n) => [
        n.id,
        !n.alive ? "dead" : n.draining ? "draining" : "alive",
        `${formatBytes(n.memory_used_bytes)} / ${formatBytes(n.memory_capacity_bytes)}`,
        `${n.models_loaded}/${n.model_capacity}`,
        String(n.loading),
        String(n.rpm),
        n.url,
      ]),
    ),
    "",
  );
  if (view.models.length > 0) {
    lines.push(
      formatTable(
        ["MODEL", "COPIES", "REQUESTS", "LAST USED"],
        view.models.map((m) => [
          m.name,
          m.copies.length === 0
            ? "-"
            : m.copies.map((c) => (c.state === "ready" ? c.node : `${c.node} (loading)`)).join(", "),
          String(m.requests),
          clock(m.last_used),
        ]),
      ),
      "",
    );
  }
  const plan = view.plan;
  if (plan === null) lines.push("warm-up: no plan yet");
  else {
    lines.push(
      `warm-up plan ${plan.id} by ${plan.leader} at ${clock(plan.created_at)}: ${plan.settled} of ${plan.total} settled`,
    );
    for (const item of plan.items) {
      const from = item.from === undefined ? "" : ` (from ${item.from})`;
      lines.push(`  ${item.model} → ${item.node}${from}: ${item.state}`);
    }
    for (const s of plan.skipped) lines.push(`  ${s.model}: skipped (${s.reason})`);
  }
  return lines.join("\n");
}

export async function statusCommand(ctx: CliContext): Promise<void> {
  const config = await ctx.loadConfig();
  const { server, url } = await findServer(ctx, config);
  if (!server) {
    throw new ServerUnavailable(
      `no Inferno server answers at ${url}: \`${ctx.command("fleet status")}\` asks a running node (start one with \`${ctx.command("serve")}\`, or give --server URL)`,
    );
  }
  const view = await server.client.fleet();
  if (ctx.out.json) ctx.out.printJson(view);
  else ctx.out.print(formatFleet(view));
}

export async function eventsCommand(ctx: CliContext, options: { since?: string }): Promise<void> {
  const config = await ctx.loadConfig();
  const fleet = fleetOf(config);
  ctx.out.info(`watching the events of fleet ${fleet.name} on ${fleet.redactedUrl} (Ctrl-C to stop)`);
  // Until Ctrl-C, as `inferno cache events`.
  for await (const { id, node, event } of fleetEvents(config, options)) {
    ctx.out.print(
      ctx.out.json
        ? JSON.stringify({ id, node, ...event })
        : `${id} ${node} ${eventLine(event as Parameters<typeof eventLine>[0])}`,
    );
  }
}
