/** Running the CLI in-process with captured output and a sandboxed home, XDG config dir and working directory. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import type { TestContext } from "node:test";
import { main } from "../src/cli/main.js";
import { type LoadConfigOptions, resolveConfig } from "../src/config/index.js";
import { tempDir } from "./tmp.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Each write to stdout, in order: shows whether output came in pieces (streaming) or at once. */
  stdoutWrites: string[];
}

function capture(): { stream: Writable; text: () => string; chunks: string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join(""), chunks };
}

/** An empty home, XDG config dir and working directory, so no real user file leaks into a test. */
export async function cliSandbox(t: TestContext) {
  const root = await tempDir(t);
  const home = join(root, "home");
  const cwd = join(root, "work");
  const xdg = join(root, "xdg");
  await Promise.all([home, cwd, xdg].map((d) => mkdir(d, { recursive: true })));
  const env: Record<string, string> = { HOME: home, XDG_CONFIG_HOME: xdg, PATH: process.env.PATH ?? "" };
  return {
    root,
    home,
    cwd,
    env,
    /** The per-user default models directory under this home (`~/.local/share/inferno/models`). */
    modelsDir: join(home, ".local", "share", "inferno", "models"),
    globalFile: join(xdg, "inferno", "config.toml"),
    userFile: join(home, ".inferno.toml"),
    localFile: join(cwd, ".inferno.toml"),
    /**
     * The configuration as the CLI resolves it here (the values and where each came from); `extraEnv` adds variables,
     * `options` anything else (`configFile`, flags).
     */
    resolve(extraEnv: Record<string, string> = {}, options: Omit<LoadConfigOptions, "env" | "home" | "cwd"> = {}) {
      return resolveConfig({ env: { ...env, ...extraEnv }, home, cwd, ...options });
    },
    /** Runs `inferno ...args` in-process; `extraEnv` adds variables for this run only. */
    run(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
      return runCli(args, { env: { ...env, ...extraEnv }, cwd });
    },
  };
}

/** Runs `inferno ...args` in-process with the given environment and working directory. */
export async function runCli(
  args: string[],
  where: { env: Record<string, string>; cwd: string; stdin?: string[] },
): Promise<CliResult> {
  const out = capture();
  const err = capture();
  const code = await main(["node", "inferno", ...args], {
    stdout: out.stream,
    stderr: err.stream,
    env: where.env,
    cwd: where.cwd,
    // Lines piped in (not a terminal), as `inferno run`'s chat reads them.
    ...(where.stdin ? { stdin: Readable.from(where.stdin.map((line) => `${line}\n`)) } : {}),
  });
  return { code, stdout: out.text(), stderr: err.text(), stdoutWrites: out.chunks };
}
