/**
 * Logs with pino: human-readable (pino-pretty) when the destination is a terminal, one JSON object per line otherwise
 * (for log collectors). Logs go to stderr so stdout carries only results (e.g. the address `inferno serve` prints).
 */
import { pino, type Logger as PinoLogger } from "pino";
import pretty from "pino-pretty";
import type { Writable } from "node:stream";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface LoggerOptions {
  /** Least severe level written. Default `info`. */
  level?: LogLevel;
  /** Where logs go. Default: process.stderr. */
  destination?: Writable & { isTTY?: boolean };
  /** Pretty output; default: when the destination is a TTY. */
  pretty?: boolean;
}

export type InfernoLogger = PinoLogger;

export function createLogger(options: LoggerOptions = {}): InfernoLogger {
  const destination = options.destination ?? process.stderr;
  const level = options.level ?? "info";
  const base = { level, base: undefined };
  if (options.pretty ?? destination.isTTY === true) {
    // A stream in this thread, not a transport worker: logs stay in order with the progress line and flush on exit.
    return pino(
      base,
      pretty({
        destination,
        colorize: destination.isTTY === true,
        sync: true,
        singleLine: true,
        ignore: "pid,hostname",
      }),
    );
  }
  return pino(base, destination);
}

/** A logger that writes nothing (library use without a logger, tests). */
export function silentLogger(): InfernoLogger {
  return pino({ level: "silent" });
}
