/** `inferno run`'s chat under a real pseudo-terminal (util-linux `script`). */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { cliSandbox } from "../helpers/cli.js";
import { TEST_BACKEND_ENV } from "../helpers/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const LOCAL = { ...TEST_BACKEND_ENV, INFERNO_SERVER__PORT: "1" };
const GREEDY = ["--max-tokens", "6", "--temperature", "0"];
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");


test("run's chat under a real terminal: >>> prompt, streamed answer, Ctrl-D leaves", { skip: spawnSync("script", ["--version"]).status === 0 ? false : "util-linux script is not installed" }, async (t) => {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const command = [process.execPath, "--import", TSX, MAIN, "run", "inferno-demo", ...GREEDY].map((a) => `'${a}'`).join(" ");
  const child = spawn("script", ["-qfec", command, "/dev/null"], { cwd: s.cwd, env: { ...s.env, ...LOCAL, TERM: "dumb" } });
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const waitFor = (check: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (check()) {
          clearInterval(timer);
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`exited early:\n${output}`));
        }
      }, 50);
    });
  const prompts = () => output.split(">>> ").length - 1;
  await waitFor(() => prompts() >= 1);
  assert.match(output, /chatting with inferno-demo\.gguf: \/bye or Ctrl-D leaves, Ctrl-C stops an answer/);
  child.stdin.write("Hello\r");
  await waitFor(() => prompts() >= 2);
  child.stdin.write("\x04");
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, output);
  const answer = output.slice(output.indexOf("Hello") + 5, output.lastIndexOf(">>> ")).trim();
  assert.ok(answer.length > 0, `an answer between the two prompts:\n${output}`);
});
