/**
 * Debian's chromium, headless, driven by playwright-core, for the status-page tests. `BROWSER_SKIP` holds the reason
 * where no chromium is installed (`.ci/run` installs it); the tests pass it as `skip`.
 */
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";

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

/**
 * A fresh page in a browser closed when the test ends, at `url`: `errors` collects what a user would find in the
 * browser's console — uncaught errors, console errors (a failed fetch, a 404 for an icon, a content-security-policy
 * violation all log one) and requests that failed outright (a test ends by asserting it is empty).
 */
export async function openPage(
  t: TestContext,
  url: string,
  timeoutMs = 10_000,
): Promise<{ page: Page; errors: string[] }> {
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(timeoutMs);
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("requestfailed", (r) => {
    const why = r.failure()?.errorText ?? "";
    // A reload cancels the open event stream (ERR_ABORTED): the browser's doing, not a failure the page meets.
    if (why !== "net::ERR_ABORTED") errors.push(`request failed: ${r.url()} ${why}`);
  });
  await page.goto(url);
  return { page, errors };
}
