// A node:test reporter that writes one line per test file, `<milliseconds>\t<file>`, the file's own duration as the
// runner measured it (its process start to its end). scripts/test.mjs gives it a temporary file as destination and
// prints the slowest files from it.
export default async function* fileTimes(source) {
  for await (const event of source) {
    // With a process per file, each file is a test of its own whose name is its path.
    if (event.type !== "test:complete" || event.data.nesting !== 0 || event.data.name !== event.data.file) continue;
    yield `${Math.round(event.data.details.duration_ms)}\t${event.data.file}\n`;
  }
}
