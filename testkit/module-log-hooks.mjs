// The hook module-log.mjs registers (it runs on the loader thread).
import { appendFileSync } from "node:fs";

const LOG = process.env.MODULE_LOG_FILE;

export async function load(url, context, next) {
  if (LOG && !url.startsWith("node:")) appendFileSync(LOG, `${url}\n`);
  return next(url, context);
}
