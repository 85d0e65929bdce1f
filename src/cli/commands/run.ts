/** `inferno run`'s command line (like `ollama run`); what it does is in ../actions/run.ts, imported when it runs. */
import { Option, type Command } from "commander";
import { DEFAULT_TEMPERATURE } from "../../backends/types.js";
import type { RunOptions } from "../actions/run.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, COMMAND_FLAGS, MODEL_ARGUMENT_HELP } from "../flags.js";

/** Tokens generated per answer when `--max-tokens` is not given. */
export const DEFAULT_RUN_MAX_TOKENS = 128;

export function registerRun(program: Command, ctx: CliContext): void {
  addConfigFlags(
    program
      .command("run")
      .description("chat with a GGUF model: answer PROMPT, or chat turn by turn without one (like `ollama run`)")
      .argument("[model]", MODEL_ARGUMENT_HELP)
      .argument(
        "[prompt...]",
        "what to say (several words are joined with spaces, as `ollama run` does); without it, a chat reads one turn per line (/? lists its commands, /bye or Ctrl-D leaves)",
      )
      .option("--model <name>", "the model, as a flag (instead of MODEL)")
      .option("--prompt <text>", "the prompt, as a flag (instead of PROMPT)")
      .option("--raw", "complete the text as written instead of chatting through the model's chat template")
      .option("--system <text>", "a system message for the chat")
      .addOption(
        new Option("--max-tokens <n>", "most tokens per answer").default(
          String(DEFAULT_RUN_MAX_TOKENS),
          String(DEFAULT_RUN_MAX_TOKENS),
        ),
      )
      .option("--temperature <t>", `sampling temperature, 0 = greedy (default ${DEFAULT_TEMPERATURE})`)
      .option("--seed <n>", "sampling seed, for repeatable output")
      .option("--stream", "print tokens as they are generated (default on a terminal)")
      .option("--no-stream", "print each answer whole")
      .option("--local", "load the model in this process even when a server is running"),
    COMMAND_FLAGS.run,
  ).action(async (model: string | undefined, words: string[], options: RunOptions) =>
    (await import("../actions/run.js")).runCommand(ctx, model, words.length > 0 ? words.join(" ") : undefined, options),
  );
}
