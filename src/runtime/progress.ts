/**
 * Model load progress on the terminal. Backends report progress through `LoadOptions.onProgress`; the runtime wraps
 * every backend so each load also reports to a listener, which draws one updating line on a TTY.
 */
import type { Writable } from "node:stream";
import type { Backend, BackendRegistry } from "../backends/types.js";
import type { LoadProgressListener } from "./types.js";

/** Wraps each backend so every load reports its progress to `listener` too (the caller's own onProgress still runs). */
export function observeLoads(backends: BackendRegistry, listener: LoadProgressListener): BackendRegistry {
  const observed: BackendRegistry = {};
  for (const [format, backend] of Object.entries(backends) as Array<[keyof BackendRegistry, Backend]>) {
    observed[format] = {
      format: backend.format,
      load: (model, options) => {
        listener(model.name, 0);
        return backend.load(model, {
          ...options,
          onProgress: (fraction) => {
            options.onProgress?.(fraction);
            listener(model.name, fraction);
          },
        });
      },
      dispose: () => backend.dispose(),
    };
    if (backend.ready) observed[format].ready = backend.ready.bind(backend);
  }
  return observed;
}

const BAR_WIDTH = 24;

/** Draws `loading NAME [#####   ] 42%` on one terminal line, redrawn in place; cleared when the load ends. */
export class ProgressLine {
  private shown = false;
  /** What the line shows now, so repeated reports of the same percentage do not redraw it. */
  private current = "";

  constructor(private readonly stream: Writable) {}

  readonly update: LoadProgressListener = (name, fraction) => {
    const clamped = Math.min(1, Math.max(0, fraction));
    const filled = Math.round(clamped * BAR_WIDTH);
    const bar = `${"#".repeat(filled)}${" ".repeat(BAR_WIDTH - filled)}`;
    const line = `loading ${name} [${bar}] ${Math.round(clamped * 100)}%`;
    if (this.shown && line === this.current) return;
    this.stream.write(`\r\x1b[2K${line}`);
    this.current = line;
    this.shown = true;
  };

  /** Removes the line (before a log line is written or when the load ended). */
  clear(): void {
    if (!this.shown) return;
    this.stream.write("\r\x1b[2K");
    this.shown = false;
  }
}
