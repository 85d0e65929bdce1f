/** `inferno serve`: the OpenAI-compatible HTTP server on the model cache, until SIGINT or SIGTERM. */
import type { Command } from "commander";
import { runServer } from "../../runtime/index.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, type ConfigFlagName, configFlagValues } from "../flags.js";
import { packageVersion } from "../version.js";

const SERVE_FLAGS: readonly ConfigFlagName[] = ["host", "port", "models-dir", "cache-dir", "max-cached-models", "api-key"];

export function registerServe(program: Command, ctx: CliContext): void {
  const command = program
    .command("serve")
    .description("serve the OpenAI-compatible HTTP API and the cache admin API (stop with Ctrl-C or SIGTERM)");
  addConfigFlags(command, SERVE_FLAGS);
  command.action(async (options: Record<string, unknown>) => {
    const config = await ctx.loadConfig(configFlagValues(options, SERVE_FLAGS));
    const { globals, out } = ctx;
    await runServer(config, {
      version: packageVersion(),
      logLevel: globals.verbose ? "debug" : globals.quiet ? "warn" : "info",
      logDestination: out.stderr,
      environment: ctx.environment(),
      onListening: (url, modelCount) => out.print(`Inferno is serving ${modelCount} model(s) on ${url}`),
    });
  });
}
