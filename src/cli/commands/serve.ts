/** `inferno serve`'s command line; what it does is in ../actions/serve.ts, imported when it runs. */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { addConfigFlags, COMMAND_FLAGS } from "../flags.js";

export function registerServe(program: Command, ctx: CliContext): void {
  const command = program
    .command("serve")
    .description("serve the OpenAI-compatible HTTP API and the cache admin API (stop with Ctrl-C or SIGTERM)");
  addConfigFlags(command, COMMAND_FLAGS.serve);
  command.action(async (options: Record<string, unknown>) =>
    (await import("../actions/serve.js")).serveCommand(ctx, options),
  );
}
