/**
 * `inferno config`'s command tree: read the layered configuration (`get`, `show`, `path`, `validate`) and change the
 * local or global file (`set`, `unset`, `init`). What each does is in ../actions/config.ts, imported when it runs.
 */
import type { Command } from "commander";
import type { TargetOptions } from "../actions/config.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, COMMAND_FLAGS } from "../flags.js";

const actions = () => import("../actions/config.js");

/** Registers `inferno config` and its subcommands. */
export function registerConfig(program: Command, ctx: CliContext): void {
  const config = program
    .command("config")
    .description("read and change the configuration (.inferno.toml files, layered; see `config path`)");

  addConfigFlags(
    config
      .command("get")
      .description("print the effective value of a key (or a whole section) after every layer is applied")
      .argument("<key>", 'dotted key, e.g. server.port or cache.models."my_model.gguf".pinned'),
    COMMAND_FLAGS.config,
  ).action(async (key: string, options: Record<string, unknown>) => (await actions()).getCommand(ctx, key, options));

  config
    .command("set")
    .description("set a key in ./.inferno.toml (or the global file), keeping the file's comments and layout")
    .argument("<key>", 'dotted key, e.g. cache.persist_cache or cache.models."my_model.gguf".pinned')
    .argument("<value>", 'the value: true/false, a number, a list (a,b or ["a","b"]) or a string')
    .option("--global", "write the global file ($XDG_CONFIG_HOME/inferno/config.toml) instead")
    .action(async (key: string, value: string, options: TargetOptions) =>
      (await actions()).setCommand(ctx, key, value, options),
    );

  config
    .command("unset")
    .description("remove a key (or a per-model table) from ./.inferno.toml (or the global file)")
    .argument("<key>", "dotted key")
    .option("--global", "edit the global file ($XDG_CONFIG_HOME/inferno/config.toml) instead")
    .action(async (key: string, options: TargetOptions) => (await actions()).unsetCommand(ctx, key, options));

  addConfigFlags(
    config
      .command("show")
      .description("print the effective configuration as TOML (or JSON with --json)")
      .option("--origin", "say where each value comes from (default, a file, an environment variable or a flag)"),
    COMMAND_FLAGS.config,
  ).action(async (options: { origin?: boolean } & Record<string, unknown>) =>
    (await actions()).showCommand(ctx, options),
  );

  config
    .command("path")
    .description("list the configuration files in precedence order, which exist, and which file `set` writes")
    .action(async () => (await import("../actions/config-path.js")).pathCommand(ctx));

  config
    .command("init")
    .description("write a commented starter ./.inferno.toml (or the global file); never overwrites")
    .option("--global", "create the global file ($XDG_CONFIG_HOME/inferno/config.toml) instead")
    .action(async (options: TargetOptions) => (await actions()).initCommand(ctx, options));

  config
    .command("validate")
    .description("load every configuration layer; print OK and what was read, or the error (exit 2)")
    .action(async () => (await actions()).validateCommand(ctx));
}
