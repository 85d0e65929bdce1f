/**
 * The status page at `GET /` in a real browser: Debian's chromium, headless, driven by playwright-core. Skipped (with
 * the reason printed) only where no chromium is installed; `.ci/run` installs it.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { BROWSER_SKIP as skip, openPage } from "../../testkit/browser.js";
import { startFakeServer } from "../../testkit/fake-server.js";
import { tempDir } from "../../testkit/tmp.js";

if (skip) console.log(`# status page browser tests skipped: ${skip}`);

const HOSTILE = `<img src=x onerror="window.__pwned=1">.gguf`;

it("GET / serves the page and HEAD / still answers Ollama clients", async (t) => {
  const s = await startFakeServer(t);
  const page = await fetch(`${s.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await page.text(), /<script src="\/status\.js"><\/script>/);
  const head = await fetch(`${s.url}/`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal((await fetch(`${s.url}/status.js`)).status, 200);
  // The browser holds the page to its own script, routes and style: nothing from elsewhere, no frame around it.
  const policy = page.headers.get("content-security-policy") ?? "";
  for (const rule of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(policy.includes(rule), `${rule} in ${policy}`);
  }
});

it("the page shows a model appear when a request loads it and disappear when it is evicted", { skip }, async (t) => {
  const s = await startFakeServer(t, {
    models: ["a.gguf", HOSTILE],
    behaviours: { "a.gguf": { loadMs: 30, memoryBytes: 64 * 1024 * 1024 } },
    config: { cache: { max_memory_mb: 1024 } },
  });
  const dir = await tempDir(t, "inferno-status-page-");
  const { page, errors } = await openPage(t, `${s.url}/`);
  await page.getByText("Live: following the cache's events.").waitFor();
  await page.getByText("No model is loaded.").waitFor();
  // The style block is the one the policy's hash allows: the page is styled, not refused.
  assert.equal(await page.evaluate("getComputedStyle(document.body).fontSize"), "15px");
  // Nothing in the console on a plain visit (a browser's /favicon.ico request found nothing, once).
  assert.deepEqual(errors, []);
  // A fetch elsewhere (what an injected script would try) is refused by the policy, and the console shows it.
  const elsewhere = await page.evaluate(() =>
    fetch("http://192.0.2.1/").then(
      () => "sent",
      () => "refused",
    ),
  );
  assert.equal(elsewhere, "refused");
  assert.match(errors.splice(0).join("\n"), /Content Security Policy/);
  // A single node: no fleet section.
  assert.equal(await page.locator("#fleet").isHidden(), true);

  (await s.cache.acquire("a.gguf")).release();
  const row = page.locator('tr[data-model="a.gguf"]');
  await row.waitFor();
  assert.match(await row.innerText(), /a\.gguf\s+ready\s+0\s+64\.0 MiB \(6\.3% of the limit\)/);
  await page.getByText(/\d\d:\d\d:\d\d loaded a\.gguf \d+ ms/).waitFor();
  await page.getByText(/^0 hits, 1 misses/).waitFor();
  // One load, one "loading" line: the progress the runtime reports (up to 1) is not a second load.
  assert.equal(await page.locator("#feed li", { hasText: "loading a.gguf" }).count(), 1);

  // A hostile name is text, never markup.
  await s.cache.load(HOSTILE);
  await page.locator("tbody th", { hasText: HOSTILE }).waitFor();
  assert.equal(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned), undefined);
  await page.screenshot({ path: join(dir, "status-loaded.png"), fullPage: true });

  await s.cache.evict("a.gguf");
  await row.waitFor({ state: "detached" });
  await page.getByText("manual: 1").waitFor();
  await page.screenshot({ path: join(dir, "status-evicted.png"), fullPage: true });
  assert.ok(existsSync(join(dir, "status-evicted.png")));
  assert.deepEqual(errors, []);
});

it("with api_key the page asks for the key once, keeps it for the tab, and follows the events", { skip }, async (t) => {
  const s = await startFakeServer(t, { config: { server: { api_key: "page-key" } } });
  // The page knows a key is needed before it reads anything: no 401 in the console.
  const { page, errors } = await openPage(t, `${s.url}/`);
  await page.getByText("This server needs its API key.").waitFor();
  await page.getByLabel("This server needs its API key:").fill("page-key");
  await page.keyboard.press("Enter");
  await page.getByText("Live: following the cache's events.").waitFor();
  await s.cache.load("a.gguf");
  await page.locator('tr[data-model="a.gguf"]').waitFor();
  await page.reload();
  await page.getByText("Live: following the cache's events.").waitFor();
  assert.equal(await page.locator("#key-form").isHidden(), true);
  assert.deepEqual(errors, []);
});
