/** `inferno serve`: the OpenAI-compatible HTTP server on the model cache, until SIGINT or SIGTERM. */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { addConfigFlags, BACKEND_FLAGS, type ConfigFlagName, configFlagValues } from "../flags.js";
import { packageVersion } from "../version.js";

/** Server and cache flags, and every backend flag `run` takes (the same table, so the two cannot drift). */
const SERVE_FLAGS: readonly ConfigFlagName[] = ["host", "port", "models-dir", "cache-dir", "max-cached-models", "api-key", ...BACKEND_FLAGS];

/** A curl command that works as printed against this server (the key itself is never printed). */
export function curlLine(url: string, model: string, needsKey: boolean): string {
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }], max_tokens: 16 });
  const auth = needsKey ? ` -H "Authorization: Bearer $INFERNO_SERVER__API_KEY"` : "";
  return `curl ${url}/v1/chat/completions -H 'Content-Type: application/json'${auth} -d '${body}'`;
}

export function registerServe(program: Command, ctx: CliContext): void {
  const command = program
    .command("serve")
    .description("serve the OpenAI-compatible HTTP API and the cache admin API (stop with Ctrl-C or SIGTERM)");
  addConfigFlags(command, SERVE_FLAGS);
  command.action(async (options: Record<string, unknown>) => {
    const config = await ctx.loadConfig(configFlagValues(options, SERVE_FLAGS));
    const { globals, out } = ctx;
    // The server (hono, pino, prom-client, the cache) is imported only when serving: other commands start faster.
    const { runServer } = await import("../../runtime/run-server.js");
    await runServer(config, {
      version: packageVersion(),
      logLevel: globals.verbose ? "debug" : globals.quiet ? "warn" : "info",
      logDestination: out.stderr,
      environment: ctx.environment(),
      onListening: (url, modelCount, firstModel) => {
        out.print(`Inferno is serving ${modelCount} model(s) on ${url}`);
        out.print(`OpenAI base URL: ${url}/v1${config.server.api_key ? " (with the API key from server.api_key)" : ""}`);
        if (firstModel) out.print(`try: ${curlLine(url, firstModel, config.server.api_key !== "")}`);
      },
    });
  });
}
