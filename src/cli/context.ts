/**
 * What every command gets: its IO, the global flags, output helpers and the layered configuration. Built for every
 * invocation, `--help` included, so the configuration loader (and the zod schema under it) is imported only when a
 * command asks for the configuration.
 */
import type { Command } from "commander";
import type { FlagValue, LoadConfigOptions, ResolvedConfig } from "../config/load.js";
import type { InfernoConfig } from "../config/schema.js";
import { currentEnvironment, type Environment } from "../config/paths.js";
import { type CliIO, type GlobalOptions, Output } from "./io.js";

export class CliContext {
  /** Set by a command that fails without throwing (e.g. `models validate` found invalid files). */
  exitCode = 0;

  constructor(
    readonly io: CliIO,
    private readonly program: Command,
  ) {}

  get globals(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  /** A command line the user can type to run `args` with this CLI, as it was started (for hints). */
  command(args: string): string {
    return `${this.io.invocation ?? "inferno"} ${args}`;
  }

  get out(): Output {
    return new Output(this.io, this.globals);
  }

  /**
   * The layered configuration with origins, honouring `--config` and the command's own config flags. `fileTexts`
   * stands in for files not yet written (`config set` validates the configuration a change would produce).
   */
  async resolveConfig(flags: FlagValue[] = [], fileTexts?: LoadConfigOptions["fileTexts"]): Promise<ResolvedConfig> {
    const { resolveConfig } = await import("../config/load.js");
    return resolveConfig({ env: this.io.env, cwd: this.io.cwd, configFile: this.globals.config, flags, fileTexts });
  }

  /** The environment commands run in (variables, home, working directory): what `model_stores` are located by. */
  environment(): Environment {
    return currentEnvironment({ env: this.io.env, cwd: this.io.cwd });
  }

  async loadConfig(flags: FlagValue[] = []): Promise<InfernoConfig> {
    return (await this.resolveConfig(flags)).config;
  }
}
