/**
 * Child process of the lost-update scenario (lost-updates.ts): one CLI process that runs `inferno cache evict NAME`
 * for each name given (the CLI's own `main`, configured by the environment), one after another, and prints one JSON
 * line: the exit codes and the first failure's output.
 */
import { Writable } from "node:stream";
import { main } from "../../src/cli/main.js";

const names = process.argv.slice(2);
const codes: number[] = [];
let failure: string | null = null;
for (const name of names) {
  let output = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output += chunk.toString();
      done();
    },
  });
  const code = await main(["node", "inferno", "cache", "evict", name], {
    stdout: sink,
    stderr: sink,
    env: process.env,
    cwd: process.cwd(),
  });
  codes.push(code);
  if (code !== 0 && failure === null) failure = `${name}: exit ${code}: ${output.trim()}`;
}
console.log(JSON.stringify({ codes, failure }));
