/**
 * Code examples of the docs, run as written: the first ```ts block after a marker in a markdown file, its imports
 * removed (the test passes the imported values in), the server's address and the model name replaced by the test's.
 */
import { readFile } from "node:fs/promises";

/** The first ```ts block after `marker` in `file` (a path from the repository root). */
export async function docSnippet(file: string, marker: string): Promise<string> {
  const text = await readFile(new URL(`../${file}`, import.meta.url), "utf8");
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${file} has no "${marker}"`);
  const block = /```ts\n([\s\S]*?)```/.exec(text.slice(at))?.[1];
  if (block === undefined) throw new Error(`${file} has no ts block after "${marker}"`);
  return block;
}

/**
 * Runs `body` as an async function whose parameters are `values`' names: its import lines removed (`values` holds
 * what they import), `http://127.0.0.1:8080` replaced by `url` and the model `inferno-demo` by `model`.
 */
export async function runSnippet(
  body: string,
  { url, model }: { url: string; model: string },
  values: Record<string, unknown>,
): Promise<void> {
  const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (
    ...args: string[]
  ) => (...values: unknown[]) => Promise<void>;
  const code = body
    .replace(/^import .*$/gm, "")
    .replaceAll("http://127.0.0.1:8080", url)
    .replaceAll("inferno-demo", model);
  await new AsyncFunction(...Object.keys(values), code)(...Object.values(values));
}

/** Runs `body` like `runSnippet` with a `console` whose `log` is recorded; returns the values it logged. */
export async function snippetLogs(
  body: string,
  target: { url: string; model: string },
  values: Record<string, unknown>,
): Promise<unknown[]> {
  const logged: unknown[] = [];
  await runSnippet(body, target, { ...values, console: { log: (...args: unknown[]) => logged.push(...args) } });
  return logged;
}
