/**
 * The live-server path of `inferno cache …` and `inferno ps`: find a running `inferno serve` (address from `--server` or
 * `[server]`, API key from the configuration) and use it, or report that none answers so the command falls back to the
 * state file. Either way the command says which it used.
 */
import type { InfernoConfig } from "../config/index.js";
import { InfernoClient, serverUrl } from "../runtime/client.js";
import type { CliContext } from "./context.js";

export interface LiveServer {
  client: InfernoClient;
  url: string;
}

/** The running server, or null (with the address that was tried) when none answers there. */
export async function findServer(
  ctx: CliContext,
  config: InfernoConfig,
): Promise<{ server: LiveServer | null; url: string }> {
  const url = serverUrl(config.server, ctx.globals.server);
  const client = new InfernoClient(url, { apiKey: config.server.api_key });
  return { server: (await client.ping()) ? { client, url } : null, url };
}
