/**
 * `inferno models`'s command tree: list, inspect and validate the models, and write a demo model. What each command
 * does is in ../actions/models.ts, imported when it runs.
 */
import type { Command } from "commander";
import { DEMO_MODEL_NAME } from "../../models/demo.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, COMMAND_FLAGS, keyReference, MODEL_ARGUMENT_HELP } from "../flags.js";

const FLAGS = COMMAND_FLAGS.models;
const STORES = (keyReference("model_stores").choices ?? []).join(", ");
const actions = () => import("../actions/models.js");

export function registerModels(program: Command, ctx: CliContext): void {
  const models = program
    .command("models")
    .description("list, inspect and validate the models in the models directories and stores");

  addConfigFlags(
    models
      .command("list")
      .description("list the models (name, store, format, size, architecture, quantization, parameters, context)")
      .option("--stores", `also search every model store (${STORES}), enabled in model_stores or not`),
    FLAGS,
  ).action(async (options: { stores?: boolean } & Record<string, unknown>) =>
    (await actions()).listCommand(ctx, options),
  );

  addConfigFlags(
    models
      .command("info")
      .description("show a model's header metadata and its memory estimate")
      .argument("<name>", MODEL_ARGUMENT_HELP),
    FLAGS,
  ).action(async (name: string, options: Record<string, unknown>) => (await actions()).infoCommand(ctx, name, options));

  addConfigFlags(
    models
      .command("validate")
      .description("check model files (magic, version, truncation, readability); exit code 1 if any is invalid")
      .argument("[name]", "one model (default: all)")
      .option("--hash", "also compute each file's sha256"),
    FLAGS,
  ).action(async (name: string | undefined, options: { hash?: boolean } & Record<string, unknown>) =>
    (await actions()).validateCommand(ctx, name, options),
  );

  addConfigFlags(
    models
      .command("demo")
      .description(
        `write a tiny demo model (${DEMO_MODEL_NAME}.gguf, random weights) to try Inferno without a download`,
      )
      .argument("[dir]", "directory to write to (default: the configured models_dir)"),
    FLAGS,
  ).action(async (dir: string | undefined, options: Record<string, unknown>) =>
    (await actions()).demoCommand(ctx, dir, options),
  );
}
