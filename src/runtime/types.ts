/**
 * The runtime as the server and the live CLI see it. The shapes are defined by the server (`server/ports.ts`), which
 * never imports the runtime: `runtime/` → `server/` is the only direction.
 */
export type * from "../server/ports.js";
