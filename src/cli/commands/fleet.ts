/**
 * `inferno fleet …`'s command tree: the fleet a node belongs to (docs/fleet.md). What each command does is in
 * ../actions/fleet.ts, imported when it runs.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";

const actions = () => import("../actions/fleet.js");

export function registerFleet(program: Command, ctx: CliContext): void {
  const fleet = program.command("fleet").description("the fleet of nodes sharing one model cache through Redis");

  fleet
    .command("status")
    .description(
      "print the fleet as the running server sees it: nodes, health, memory, models and their copies, usage, the warm-up plan (--json: GET /v1/fleet)",
    )
    .action(async () => (await actions()).statusCommand(ctx));

  fleet
    .command("events")
    .description(
      "print every node's cache events from the fleet's event stream in Redis as they happen (--json: NDJSON with each event's id)",
    )
    .option("--since <id>", "start after this event id (0: from the oldest kept); default: from now on")
    .action(async (options: { since?: string }) => (await actions()).eventsCommand(ctx, options));
}
