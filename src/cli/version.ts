/** The package version, for `--version`, `/health` and logs. */
import { readFileSync } from "node:fs";

/** Read from package.json (two levels up from both src/cli and dist/cli). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
