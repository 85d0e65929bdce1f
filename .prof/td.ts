import { UsageBook } from "../src/cache/usage.js";
const book = new UsageBook(24);
const now = Date.now();
for (let i = 0; i < 10000; i++) book.recordUse({ name: `m${i}.gguf`, key: `/m/m${i}.gguf`, path: "", format: "gguf", fingerprint: { size: 1, mtimeMs: 1 } }, "miss", now, 0);
for (let r = 0; r < 3; r++) { const t = performance.now(); book.takeDelta(now, () => false); console.log("takeDelta", performance.now() - t); }
