/** Builds the `inferno` command tree. Each command lives in `commands/` and registers itself here. */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { registerCache } from "./commands/cache.js";
import { registerConfig } from "./commands/config.js";
import { registerModels } from "./commands/models.js";
import { registerRun } from "./commands/run.js";
import { CliContext } from "./context.js";
import type { CliIO } from "./io.js";

/** The package version, read from package.json (two levels up from both src/cli and dist/cli). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

type Register = (program: Command, ctx: CliContext) => void;

/** Command registrations, in the order `inferno --help` lists them. */
const COMMANDS: Register[] = [registerRun, registerModels, registerConfig, registerCache];

export function buildProgram(io: CliIO): { program: Command; ctx: CliContext } {
  const program = new Command("inferno");
  const ctx = new CliContext(io, program);
  program
    .description("Run AI models locally, with a persistent, usage-aware model cache.")
    .version(packageVersion(), "-V, --version", "print the version")
    .option("--config <file>", "read this configuration file on top of the global, user and local ones")
    .option("--json", "print machine-readable JSON")
    .option("--verbose", "print more detail (and stack traces on errors)")
    .option("--quiet", "print only the results")
    .option("--server <url>", "address of a running `inferno serve` (default: from [server] in the configuration)")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride();
  for (const register of COMMANDS) register(program, ctx);
  return { program, ctx };
}
