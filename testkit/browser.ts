/**
 * Debian's chromium, headless, driven by playwright-core, for the status-page tests. `BROWSER_SKIP` holds the reason
 * where no chromium is installed (`.ci/run` installs it); the tests pass it as `skip`.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => existsSync(path));

/** Why the browser tests cannot run here, or false when they can. */
export const BROWSER_SKIP: string | false = CHROMIUM ? false : "no chromium installed (apt-get install -y chromium)";

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM as string,
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}
