/** The `inferno` entry point: runs the command tree and maps every error to an exit code and one sentence, once. */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { exitCodeOf, isInfernoError } from "../errors/index.js";
import { type CliIO, errorLine, processIO } from "./io.js";
import { packageVersion } from "./version.js";

const COMMANDER_OK = new Set(["commander.helpDisplayed", "commander.version", "commander.help"]);

/** Runs the CLI with `argv` (as `process.argv`: node, script, args…) and resolves to the exit code. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    // Answered before the command tree (and the configuration schema it describes) is even imported.
    io.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const { buildProgram } = await import("./program.js");
  const { program, ctx } = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (error) {
    // Commander is loaded by now (program.js imports it); importing it here keeps it out of `--version`'s start-up.
    const { CommanderError } = await import("commander");
    if (error instanceof CommanderError) {
      // Commander already printed its message (and the help hint) to stderr.
      return COMMANDER_OK.has(error.code) ? 0 : 2;
    }
    const verbose = ctx.globals.verbose === true;
    io.stderr.write(errorLine(error));
    if (verbose) {
      if (isInfernoError(error) && error.details) io.stderr.write(`${JSON.stringify(error.details, null, 2)}\n`);
      if (error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    }
    return exitCodeOf(error);
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

/**
 * Ends the process with `code` — also when a file-system call of the state store is stuck (a hung disk, a FIFO where
 * the state file should be): that call holds one of Node's threads, and Node neither ends by itself nor by
 * `process.exit` while it does (its exit waits for the thread). The failure was reported (the save failed with
 * `StateTimeout`); what is written is flushed, then the process ends itself with SIGKILL, the one signal that ends it
 * without that wait (exit status 137).
 */
async function exit(code: number): Promise<void> {
  process.exitCode = code;
  // The counter itself (a module that imports nothing), so that `--version` and `--help` load no runtime code.
  const { stuckFileSystemCalls } = await import("../cache/persistence/stuck-calls.js");
  if (stuckFileSystemCalls() === 0) return;
  const flushed = (stream: NodeJS.WriteStream) => new Promise((resolve) => stream.write("", resolve));
  process.stderr.write(
    `inferno: ${stuckFileSystemCalls()} file-system call(s) never returned (a stuck disk?); exiting without waiting for them\n`,
  );
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.kill(process.pid, "SIGKILL");
}

if (isEntryPoint()) {
  await exit(await main(process.argv));
}
