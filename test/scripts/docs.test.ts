/** scripts/docs.ts: the one splicer, GitHub's heading anchors, and the link check, on real files in a temporary tree. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { brokenLinks, GENERATED, slug, splice } from "../../scripts/docs.js";

describe("splice", () => {
  const page = [
    "# Page",
    "",
    "<!-- generated:table (by `npm run docs`; do not edit) -->",
    "old",
    "<!-- /generated:table -->",
    "after",
  ].join("\n");

  it("replaces what lies between the markers, a blank line either side, and keeps the rest", () => {
    const spliced = splice(page, "table", "| a |\n| --- |");
    assert.equal(
      spliced,
      [
        "# Page",
        "",
        "<!-- generated:table (by `npm run docs`; do not edit) -->",
        "",
        "| a |\n| --- |",
        "",
        "<!-- /generated:table -->",
        "after",
      ].join("\n"),
    );
    assert.equal(splice(spliced, "table", "| a |\n| --- |"), spliced, "splicing the same body again changes nothing");
  });

  it("refuses a page without the block's markers, naming the file and block", () => {
    assert.throws(() => splice(page, "other", "x", "docs/x.md"), /docs\/x\.md has no generated:other markers/);
    assert.throws(
      () => splice("<!-- /generated:table -->\n<!-- generated:table x -->", "table", "x"),
      /no generated:table/,
    );
  });

  it("every generated block has a name of its own", () => {
    assert.equal(new Set(GENERATED.map((g) => g.name)).size, GENERATED.length);
  });
});

describe("slug: GitHub's heading anchors", () => {
  const table: Array<[string, string]> = [
    ["The model cache", "the-model-cache"],
    ["`inferno cache advise`", "inferno-cache-advise"],
    ["`[cache]`", "cache"],
    ["keep_alive", "keep_alive"],
    ["Errors, security and the queue", "errors-security-and-the-queue"],
    ["Running a server: cache routes, events, the status page", "running-a-server-cache-routes-events-the-status-page"],
    ["A [linked](x.md) **bold** heading", "a-linked-bold-heading"],
  ];
  for (const [heading, expected] of table) it(`${heading} → #${expected}`, () => assert.equal(slug(heading), expected));
});

describe("brokenLinks", () => {
  it("names the file, line and target of each link or anchor that leads nowhere, and nothing else", async () => {
    const root = await mkdtemp(join(tmpdir(), "inferno-docs-"));
    try {
      await mkdir(join(root, "docs"));
      await writeFile(join(root, "docs/a.md"), "# A\n\n## Part\n\n## Part\n\ntext\n");
      await writeFile(
        join(root, "README.md"),
        [
          "# Readme",
          "[fine](docs/a.md) [fine](docs/a.md#part) [fine](docs/a.md#part-1) [fine](#readme) [web](https://example.com/x#y)",
          "[missing](docs/b.md)",
          "[no anchor](docs/a.md#nowhere) [not here](#part)",
          "`[in code](docs/none.md)`",
          "```md",
          "[in a fence](docs/none.md)",
          "```",
        ].join("\n"),
      );
      assert.deepEqual(brokenLinks(["README.md", "docs/a.md"], root), [
        "README.md:3: docs/b.md: no file docs/b.md",
        "README.md:4: docs/a.md#nowhere: no heading #nowhere in docs/a.md",
        "README.md:4: #part: no heading #part in README.md",
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
