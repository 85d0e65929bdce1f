/**
 * `inferno run`: load one GGUF model and complete a prompt, streaming tokens to the terminal as they come. It loads the
 * model directly through its backend for this one call (no cache, no server).
 */
import type { Command } from "commander";
import { createBackends } from "../../backends/index.js";
import type { GenerationResult, TextModel } from "../../backends/types.js";
import { ModelCapabilityMissing, UsageError } from "../../errors/index.js";
import type { CliContext } from "../context.js";
import { addConfigFlags, type ConfigFlagName, configFlagValues } from "../flags.js";
import { managerFor } from "./models.js";

const FLAGS: readonly ConfigFlagName[] = ["models-dir", "threads", "context-size", "gpu"];

/** Tokens generated when `--max-tokens` is not given. */
export const DEFAULT_RUN_MAX_TOKENS = 128;

interface RunOptions extends Record<string, unknown> {
  model: string;
  prompt: string;
  maxTokens?: string;
  temperature?: string;
  seed?: string;
  stream?: boolean;
}

function parseNumber(flag: string, text: string | undefined, check: (n: number) => boolean, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || !check(value)) {
    throw new UsageError(`${flag} expects ${expected}, found ${JSON.stringify(text)}`);
  }
  return value;
}

/** A one-line progress indicator on stderr, shown only on a terminal and erased when done. */
function progressLine(ctx: CliContext, label: string): { update(fraction?: number): void; done(): void } {
  const stderr = ctx.out.stderr;
  if (!stderr.isTTY || ctx.globals.quiet) return { update: () => undefined, done: () => undefined };
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let frame = 0;
  let percent = "";
  const draw = () => stderr.write(`\r${frames[frame++ % frames.length]} ${label}${percent}\x1b[K`);
  const timer = setInterval(draw, 100);
  draw();
  return {
    update(fraction) {
      if (fraction !== undefined) percent = ` ${Math.round(fraction * 100)}%`;
    },
    done() {
      clearInterval(timer);
      stderr.write("\r\x1b[K");
    },
  };
}

async function runCommand(ctx: CliContext, options: RunOptions): Promise<void> {
  const maxTokens = parseNumber("--max-tokens", options.maxTokens, (n) => Number.isInteger(n) && n > 0, "a positive whole number");
  const temperature = parseNumber("--temperature", options.temperature, (n) => n >= 0, "a number >= 0");
  const seed = parseNumber("--seed", options.seed, (n) => Number.isInteger(n) && n >= 0, "a whole number >= 0");
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const descriptor = await managerFor(config, ctx).resolve(options.model);
  if (descriptor.format !== "gguf") {
    throw new ModelCapabilityMissing(`model ${descriptor.name} is an ONNX tensor model; \`inferno run\` generates text with GGUF models`);
  }
  await using backends = createBackends();
  const backend = backends.gguf;
  if (!backend) throw new ModelCapabilityMissing("no GGUF backend is available");
  const progress = progressLine(ctx, `loading ${descriptor.name}`);
  const loadStart = performance.now();
  let model: TextModel;
  try {
    model = (await backend.load(descriptor, { backend: config.backend, onProgress: (f) => progress.update(f) })) as TextModel;
  } finally {
    progress.done();
  }
  await using _model = model;
  const loadMs = performance.now() - loadStart;
  const stream = options.stream === true && !ctx.out.json;
  const generateStart = performance.now();
  const result = await model.complete(options.prompt, {
    maxTokens: maxTokens ?? DEFAULT_RUN_MAX_TOKENS,
    ...(temperature !== undefined ? { temperature } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(stream ? { onText: (text: string) => ctx.out.write(text) } : {}),
  });
  const generateMs = performance.now() - generateStart;
  report(ctx, descriptor.name, result, stream, { loadMs, generateMs });
}

function report(ctx: CliContext, name: string, result: GenerationResult, streamed: boolean, times: { loadMs: number; generateMs: number }) {
  const { promptTokens, completionTokens } = result.usage;
  if (ctx.out.json) {
    ctx.out.printJson({
      model: name,
      text: result.text,
      finish_reason: result.finishReason,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens },
      load_ms: Math.round(times.loadMs),
      generate_ms: Math.round(times.generateMs),
    });
    return;
  }
  if (streamed) ctx.out.write("\n");
  else ctx.out.print(result.text);
  const perSecond = completionTokens / Math.max(times.generateMs / 1000, 1e-3);
  ctx.out.debug(
    `${name}: loaded in ${Math.round(times.loadMs)} ms; ${promptTokens} prompt + ${completionTokens} completion tokens ` +
      `(${perSecond.toFixed(1)} tokens/s), finish: ${result.finishReason}`,
  );
}

export function registerRun(program: Command, ctx: CliContext): void {
  addConfigFlags(
    program
      .command("run")
      .description("load a GGUF model and complete a prompt")
      .requiredOption("--model <name>", "model name: a path in the models directory, a file name or a file stem")
      .requiredOption("--prompt <text>", "the text to continue")
      .option("--max-tokens <n>", `most tokens to generate (default ${DEFAULT_RUN_MAX_TOKENS})`)
      .option("--temperature <t>", "sampling temperature, 0 = greedy (default 0.8)")
      .option("--seed <n>", "sampling seed, for repeatable output")
      .option("--stream", "print tokens as they are generated"),
    FLAGS,
  ).action((options: RunOptions) => runCommand(ctx, options));
}
