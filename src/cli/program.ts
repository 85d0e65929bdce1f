/**
 * Builds the `inferno` command tree. Each command's line (arguments, flags, help) lives in `commands/` and registers
 * itself here; what it does lives in `actions/`, imported only when it runs. So `--help` (of any command) and the
 * commands that need no configuration answer without importing the configuration schema (zod), a model runtime or the
 * server: test/cli/startup.test.ts checks which modules they load.
 */
import { Command } from "commander";
import { UsageError } from "../errors/index.js";
import { registerCache } from "./commands/cache.js";
import { registerConfig } from "./commands/config.js";
import { registerFleet } from "./commands/fleet.js";
import { registerPs } from "./commands/ps.js";
import { registerServe } from "./commands/serve.js";
import { registerModels } from "./commands/models.js";
import { registerRun } from "./commands/run.js";
import { CliContext } from "./context.js";
import type { CliIO } from "./io.js";
import { packageVersion } from "./version.js";

export { packageVersion } from "./version.js";

type Register = (program: Command, ctx: CliContext) => void;

/** Command registrations, in the order `inferno --help` lists them. */
const COMMANDS: Register[] = [
  registerServe,
  registerPs,
  registerRun,
  registerModels,
  registerCache,
  registerFleet,
  registerConfig,
];

/**
 * Verbs Ollama users type, each answered with a one-line pointer to the Inferno command that does it (or why there is
 * none). Hidden from `--help`; exit code 2 like any usage mistake.
 */
const OLLAMA_VERBS: Record<string, (ctx: CliContext, args: string[]) => string> = {
  list: (ctx) => `Inferno lists models with \`${ctx.command("models list")}\``,
  show: (ctx, [name]) => `Inferno shows a model with \`${ctx.command(`models info ${name ?? "NAME"}`)}\``,
  stop: (ctx, [name]) =>
    `Inferno unloads a model from the running server with \`${ctx.command(`cache evict ${name ?? "NAME"}`)}\``,
  rm: (ctx) =>
    `Inferno never deletes model files: remove the file from the models directory yourself (\`${ctx.command("models list")}\` shows the names)`,
  pull: (ctx) =>
    `Inferno downloads nothing: copy a .gguf or .onnx file into the models directory, or try \`${ctx.command("models demo")}\``,
};

function registerOllamaVerbs(program: Command, ctx: CliContext): void {
  for (const [verb, pointer] of Object.entries(OLLAMA_VERBS)) {
    program
      .command(verb, { hidden: true })
      .argument("[args...]")
      .allowUnknownOption()
      .helpOption(false)
      .action((args: string[]) => {
        throw new UsageError(`there is no \`${verb}\` command: ${pointer(ctx, args)}`);
      });
  }
}

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
  registerOllamaVerbs(program, ctx);
  return { program, ctx };
}
