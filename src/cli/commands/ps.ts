/** `inferno ps`'s command line; what it does is in ../actions/ps.ts (shared with `inferno cache ps`). */
import type { Command } from "commander";
import type { CliContext } from "../context.js";

/** Adds `ps` under `parent` (the program, or `cache`), naming the other spelling of the same command. */
export function addPsCommand(parent: Command, ctx: CliContext, sameAs: string): void {
  parent
    .command("ps")
    .description(
      `list the models a running server holds (NAME, SIZE, MEMORY, PARALLEL, PID, UNTIL); same as \`${sameAs}\``,
    )
    .action(async () => (await import("../actions/ps.js")).runPs(ctx));
}

export function registerPs(program: Command, ctx: CliContext): void {
  addPsCommand(program, ctx, "inferno cache ps");
}
