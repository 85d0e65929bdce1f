/** The CLI's view of the outside world, injectable so commands can be tested in-process. */
import { basename, dirname, relative } from "node:path";
import type { Readable, Writable } from "node:stream";
import { messageOf } from "../errors/index.js";

export interface CliIO {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean };
  /** Where `inferno run`'s chat reads turns from. Default: none (no interactive input). */
  stdin?: Readable & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
  /** How the user started the CLI (`inferno`, `npx inferno-ai`, `node bin/inferno.js`…), for hints. Default `inferno`. */
  invocation?: string;
}

/**
 * The command that starts this CLI as the user started it, so every hint it prints works as printed: `npx <bin>` under
 * npx, `npm run inferno --` under an npm script, the bin name when it is on PATH (`npm install -g .`, `npm link`), and
 * otherwise `node <script>` relative to the working directory.
 */
export function invocationOf(script: string | undefined, env: Record<string, string | undefined>, cwd: string): string {
  const bin = script ? basename(script) : "inferno";
  const isBin = bin === "inferno" || bin === "inferno-ai";
  if (env.npm_command === "exec") return `npx ${isBin ? bin : "inferno-ai"}`;
  if (env.npm_lifecycle_event) return "npm run inferno --";
  const onPath = script !== undefined && (env.PATH ?? "").split(":").includes(dirname(script));
  if (isBin && onPath) return bin;
  if (!script) return "inferno";
  const path = relative(cwd, script);
  return `node ${path.startsWith("..") || path === "" ? script : path}`;
}

export function processIO(): CliIO {
  const cwd = process.cwd();
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd,
    invocation: invocationOf(process.argv[1], process.env, cwd),
  };
}

/** Global flags, available to every command. */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  server?: string;
}

/** Printing helpers that honour `--json` and `--quiet`. */
export class Output {
  constructor(
    private readonly io: CliIO,
    private readonly globals: GlobalOptions,
  ) {}

  get json(): boolean {
    return this.globals.json === true;
  }

  get isTTY(): boolean {
    return this.io.stdout.isTTY === true;
  }

  /** The command's result on stdout (never silenced: it is what was asked for). */
  print(text: string): void {
    this.io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** A value as pretty JSON on stdout. */
  printJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A remark about what happened (stderr), silenced by `--quiet`. */
  info(text: string): void {
    if (!this.globals.quiet) this.io.stderr.write(`${text}\n`);
  }

  /** An error the command goes on after (stderr), as the CLI reports the one it stops at; never silenced. */
  error(error: unknown): void {
    this.io.stderr.write(errorLine(error));
  }

  /** A warning (stderr), silenced by `--quiet`. */
  warn(text: string): void {
    if (!this.globals.quiet) this.io.stderr.write(`warning: ${text}\n`);
  }

  /** Detail shown only with `--verbose`. */
  debug(text: string): void {
    if (this.globals.verbose) this.io.stderr.write(`${text}\n`);
  }

  /** Writes raw text to stdout without a newline (streaming tokens). */
  write(text: string): void {
    this.io.stdout.write(text);
  }

  /** Raw stderr, for progress lines on a TTY. */
  get stderr(): CliIO["stderr"] {
    return this.io.stderr;
  }
}

/**
 * A value as one line a terminal shows as it is: control characters (C0, DEL, C1: newlines, tabs, the escape that
 * starts terminal sequences) written as `\n`, `\t`, `\x1b`. Model names come from file names and state files, which
 * may hold any of them: printed raw, a newline split a `models list` row and an escape sequence reached the terminal.
 */
export function printable(text: string, keep: "newlines" | "none" = "none"): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it finds
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === "\n") return keep === "newlines" ? c : "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

/** Formats rows as an aligned plain-text table with a header; every cell `printable`. */
export function formatTable(headers: string[], rawRows: string[][]): string {
  const rows = rawRows.map((row) => row.map((cell) => printable(cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** An error as the CLI reports it: one line on stderr. */
export function errorLine(error: unknown): string {
  // Newlines stay: some messages quote a TOML parser's report over several lines.
  return `error: ${printable(messageOf(error), "newlines")}\n`;
}
