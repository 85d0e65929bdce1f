// Loaded with `node --import` ahead of a CLI under test: registers a module hook that appends the URL of every module
// the process loads to the file named by MODULE_LOG_FILE (one per line), so a test can see what a command
// imported.
import { register } from "node:module";

register(new URL("./module-log-hooks.mjs", import.meta.url));
