/**
 * Least exposure for messages the HTTP API sends: remote clients learn models by their names, never by the absolute
 * path of a file, a symlink's target or the layout of the server's directories. The CLI shows its local user the paths
 * (the errors themselves keep them, and so do the server's logs); this is the one place where the API's messages lose
 * them — error bodies (`mapError`), errors inside streams, and the messages of the event stream.
 *
 * What is replaced: every path an error names in its `details` (or a Node system error in `path`/`dest`), along its
 * `cause` chain, and any path under the server's own directories (the models directories and their real paths, the
 * cache directory, the temp and home directories). A model's file becomes the model's name, a file in a models
 * directory its name there, a models directory `<models_dir>`, anything else `<path>`.
 */
import { realpathSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { sep } from "node:path";
import { isInfernoError } from "../errors/index.js";

/** A directory whose paths are redacted, and how a path in it is told. */
interface Root {
  path: string;
  /** A models directory: its files are told by their names relative to it (the model names). */
  models: boolean;
}

/** The directories of a running server, as `PathRedactor` takes them. */
export interface ExposureRoots {
  modelsDirs: readonly string[];
  cacheDir?: string;
}

/** Detail keys whose string values (or lists of strings) are paths. */
const PATH_DETAILS = ["path", "target", "real_path", "models_dir", "models_dirs", "state_file", "file", "dir", "parts"];
/** A character that continues a path in a message (a path ends at whitespace, quotes, brackets or punctuation). */
const PATH_CHAR = "[^\\s\"'`,;:()<>\\[\\]]";
/** How deep a `cause` chain is followed. */
const MAX_CAUSES = 5;

function realOrSame(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

export class PathRedactor {
  private readonly roots: Root[];
  private readonly underRoots: RegExp | null;

  constructor(roots: ExposureRoots) {
    const candidates: Root[] = [];
    for (const dir of roots.modelsDirs) {
      candidates.push({ path: dir, models: true }, { path: realOrSame(dir), models: true });
    }
    for (const dir of [roots.cacheDir, tmpdir(), homedir()]) {
      if (dir) candidates.push({ path: dir, models: false }, { path: realOrSame(dir), models: false });
    }
    const seen = new Set<string>();
    // Longest first: a models directory under the temp directory is told as a models directory. The root of the file
    // system is never a root here (it would take every URL path in a message along).
    this.roots = candidates
      .map((r) => ({ ...r, path: r.path.endsWith(sep) && r.path.length > 1 ? r.path.slice(0, -1) : r.path }))
      .filter((r) => r.path.length > 1 && !seen.has(r.path) && seen.add(r.path))
      .sort((a, b) => b.path.length - a.path.length);
    this.underRoots =
      this.roots.length === 0
        ? null
        : new RegExp(
            `(?:${this.roots.map((r) => escapeRegExp(r.path)).join("|")})(?:/${PATH_CHAR}*|(?!${PATH_CHAR}))`,
            "g",
          );
  }

  /** `message` (of `error`) as a remote client may read it. */
  message(message: string, error?: unknown): string {
    let text = message;
    const named = this.namedPaths(error);
    if (named.length > 0) {
      // Whole paths only: a directory named in the details is not replaced inside a longer path under it.
      const replacements = new Map(named);
      const pattern = new RegExp(`(?:${named.map(([path]) => escapeRegExp(path)).join("|")})(?!${PATH_CHAR})`, "g");
      text = text.replace(pattern, (path) => replacements.get(path) ?? "<path>");
    }
    return this.underRoots ? text.replace(this.underRoots, (path) => this.tell(path)) : text;
  }

  /** The paths an error (and its causes) names, longest first, each with what replaces it. */
  private namedPaths(error: unknown): Array<[string, string]> {
    const found = new Map<string, string>();
    let current: unknown = error;
    for (let depth = 0; depth < MAX_CAUSES && current instanceof Error; depth++) {
      const details = isInfernoError(current) ? current.details : undefined;
      const model =
        typeof details?.name === "string" ? details.name : typeof details?.model === "string" ? details.model : null;
      for (const key of PATH_DETAILS) {
        for (const path of strings(details?.[key])) {
          if (path.length > 1 && !found.has(path))
            found.set(path, key === "path" && model !== null ? model : this.tell(path));
        }
      }
      const system = current as Error & { path?: unknown; dest?: unknown };
      for (const path of [...strings(system.path), ...strings(system.dest)])
        if (path.length > 1 && !found.has(path)) found.set(path, this.tell(path));
      current = current.cause;
    }
    return [...found.entries()]
      .filter(([path]) => path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path))
      .sort((a, b) => b[0].length - a[0].length);
  }

  /** How a path is told: a file in a models directory by its name there, a models directory as `<models_dir>`, else `<path>`. */
  private tell(path: string): string {
    const root = this.roots.find((r) => path === r.path || path.startsWith(`${r.path}/`));
    if (!root?.models) return "<path>";
    return path === root.path ? "<models_dir>" : path.slice(root.path.length + 1);
  }
}
