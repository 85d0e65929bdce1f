/** See cache/persistence/stuck-calls.ts: the CLI's entry asks this before it exits. */
export { stuckFileSystemCalls } from "../cache/persistence/stuck-calls.js";
