/**
 * `inferno config path`: the configuration files in precedence order, which exist, and which one `config set` writes.
 * It reads no file, so it imports only the path rules (config/paths.ts), never the schema.
 */
import { configFileExists, configFiles, globalConfigPath, localConfigPath } from "../../config/paths.js";
import type { CliContext } from "../context.js";
import { formatTable } from "../io.js";

export async function pathCommand(ctx: CliContext): Promise<void> {
  const environment = ctx.environment();
  const files = configFiles(environment, ctx.globals.config);
  const written = new Map([
    [localConfigPath(environment), "config set"],
    [globalConfigPath(environment), "config set --global"],
  ]);
  const rows = await Promise.all(
    files.map(async (f) => ({ ...f, exists: await configFileExists(f.path), written_by: written.get(f.path) ?? null })),
  );
  if (ctx.out.json) {
    ctx.out.printJson({ files: rows });
    return;
  }
  ctx.out.print("Configuration files, lowest precedence first (then INFERNO_* variables, then flags):");
  ctx.out.print(
    formatTable(
      ["source", "path", "exists", "written by"],
      rows.map((r) => [r.kind, r.path, r.exists ? "yes" : "no", r.written_by ?? ""]),
    ),
  );
}
