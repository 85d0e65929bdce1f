/** A model host ended by SIGSEGV in the middle of a streamed completion: see crash-mid-stream.ts. */
import { it } from "node:test";
import { crashMidStream } from "./crash-mid-stream.js";

it("SIGSEGV to a host mid-stream: the client gets an error event, the server stays healthy, another model answers at once, evictions.crashed is 1, the next request succeeds", (t) =>
  crashMidStream(t, "SIGSEGV"));
