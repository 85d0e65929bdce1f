/** What `inferno serve` does: the OpenAI-compatible HTTP server on the model cache, until SIGINT or SIGTERM. */
import type { CliContext } from "../context.js";
import { configFlagValues } from "../flag-values.js";
import { COMMAND_FLAGS } from "../flags.js";
import { packageVersion } from "../version.js";

/** A curl command that works as printed against this server (the key itself is never printed). */
export function curlLine(url: string, model: string, needsKey: boolean): string {
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }], max_tokens: 16 });
  const auth = needsKey ? ` -H "Authorization: Bearer $INFERNO_SERVER__API_KEY"` : "";
  return `curl ${url}/v1/chat/completions -H 'Content-Type: application/json'${auth} -d '${body}'`;
}

export async function serveCommand(ctx: CliContext, options: Record<string, unknown>): Promise<void> {
  const { config, origins } = await ctx.resolveConfig(configFlagValues(options, COMMAND_FLAGS.serve));
  const { globals, out } = ctx;
  // The server (hono, pino, prom-client, the cache) is imported only when serving: other commands start faster.
  const { runServer } = await import("../../runtime/run-server.js");
  await runServer(config, {
    version: packageVersion(),
    logLevel: globals.verbose ? "debug" : globals.quiet ? "warn" : "info",
    logDestination: out.stderr,
    environment: ctx.environment(),
    modelsDirConfigured: origins.get("models_dir")?.kind !== "default",
    onListening: (url, modelCount, firstModel) => {
      out.print(`Inferno is serving ${modelCount} model(s) on ${url}`);
      out.print(`OpenAI base URL: ${url}/v1${config.server.api_key ? " (with the API key from server.api_key)" : ""}`);
      if (firstModel) out.print(`try: ${curlLine(url, firstModel, config.server.api_key !== "")}`);
    },
  });
}
