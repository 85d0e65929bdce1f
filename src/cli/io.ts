/** The CLI's view of the outside world, injectable so commands can be tested in-process. */
import type { Writable } from "node:stream";

export interface CliIO {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
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

/** Formats rows as an aligned plain-text table with a header. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
