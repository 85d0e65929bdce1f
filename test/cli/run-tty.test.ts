/** `inferno run`'s chat under a real pseudo-terminal (util-linux `script`): what a user at a terminal types and sees. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { test, type TestContext } from "node:test";
import { cliSandbox } from "../../testkit/cli.js";
import { compiledCli } from "../../testkit/compiled-cli.js";
import { TEST_BACKEND_ENV } from "../../testkit/models.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */
const LOCAL = { ...TEST_BACKEND_ENV, INFERNO_SERVER__PORT: "1" };
const SKIP = spawnSync("script", ["--version"]).status === 0 ? false : "util-linux script is not installed";
/** How long any one expected output may take to appear on a busy 2-core machine before the test fails. */
const PATIENCE_MS = 120_000;

/**
 * `inferno run inferno-demo ARGS` in a pseudo-terminal: keys go in through `type`, the screen comes out as `screen()`.
 * `env` adds to (or overrides) the test backend's settings.
 */
async function chatInTerminal(t: TestContext, args: string[], env: Record<string, string> = {}) {
  const s = await cliSandbox(t);
  await s.run(["models", "demo"]);
  const command = [process.execPath, compiledCli(), "run", "inferno-demo", ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    cwd: s.cwd,
    env: { ...s.env, ...LOCAL, ...env, TERM: "dumb" },
  });
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  let screen = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (screen += chunk));
  const waitFor = (what: string, check: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const timer = setInterval(() => {
        if (check()) {
          clearInterval(timer);
          resolve();
        } else if (child.exitCode !== null || Date.now() - started > PATIENCE_MS) {
          clearInterval(timer);
          reject(new Error(`${child.exitCode !== null ? "exited" : "timed out"} waiting for ${what}:\n${screen}`));
        }
      }, 50);
    });
  const chat = {
    screen: () => screen,
    /** The number of `>>> ` prompts shown so far. */
    prompts: () => screen.split(">>> ").length - 1,
    type: (keys: string) => child.stdin.write(keys),
    waitFor,
    exited,
    /** Leaves with `/bye`: the chat ends with exit code 0. */
    async bye() {
      chat.type("/bye\r");
      assert.equal(await exited, 0, screen);
    },
  };
  await waitFor("the first prompt", () => chat.prompts() >= 1);
  return chat;
}

test("run's chat under a real terminal: >>> prompt, streamed answer, Ctrl-D leaves", { skip: SKIP }, async (t) => {
  const chat = await chatInTerminal(t, ["--max-tokens", "6", "--temperature", "0"]);
  assert.match(chat.screen(), /chatting with inferno-demo\.gguf: \/\? lists commands, \/bye or Ctrl-D leaves/);
  chat.type("Hello\r");
  await chat.waitFor("the prompt after the answer", () => chat.prompts() >= 2);
  chat.type("\x04");
  assert.equal(await chat.exited, 0, chat.screen());
  const output = chat.screen();
  const answer = output.slice(output.indexOf("Hello") + 5, output.lastIndexOf(">>> ")).trim();
  assert.ok(answer.length > 0, `an answer between the two prompts:\n${output}`);
});

test(
  "Ctrl-C under a real terminal stops the answer being streamed; the chat goes on and /bye leaves with 0",
  { skip: SKIP },
  async (t) => {
    // Greedy on the demo model never picks the end token here (measured: 4073 tokens of 4073), so without Ctrl-C this
    // answer streams until the context is full: with 4096 tokens, ~20 s — long enough that the Ctrl-C lands while it
    // streams however busy the machine (with the tests' 256, a loaded machine saw the whole answer end first).
    const chat = await chatInTerminal(t, ["--max-tokens", "100000", "--temperature", "0"], {
      INFERNO_BACKEND__CONTEXT_SIZE: "4096",
    });

    // Ctrl-C at the prompt, with no answer running, does not leave: it says how to.
    chat.type("\x03");
    await chat.waitFor("the hint", () => chat.screen().includes("(use /bye or Ctrl-D to leave)"));

    for (const words of ["Hello", "Again"]) {
      const before = chat.screen().length;
      const since = () => chat.screen().slice(before);
      chat.type(`${words}\r`);
      await chat.waitFor(`the answer to ${words} streaming`, () => since().length > words.length + 40);
      chat.type("\x03");
      // The user is told the answer was stopped, then gets the prompt back.
      await chat.waitFor(`the prompt after the stopped answer to ${words}`, () =>
        /\(stopped\)[\s\S]*>>> /.test(since()),
      );
      const stoppedAt = chat.screen().length;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(
        chat.screen().length,
        stoppedAt,
        `nothing more was streamed after the prompt came back:\n${chat.screen().slice(stoppedAt)}`,
      );
    }

    await chat.bye();
  },
);

test(
  "a line longer than the context, under a real terminal: the error is shown and the chat goes on",
  { skip: SKIP },
  async (t) => {
    const chat = await chatInTerminal(t, ["--max-tokens", "4", "--temperature", "0"]);
    // ~300 words: more than the 256 tokens of the tests' context, even as the only message.
    chat.type(`${"tell me about the cat ".repeat(60)}\r`);
    await chat.waitFor("the error and the next prompt", () =>
      /error: messages: \d+ tokens[\s\S]*>>> $/.test(chat.screen()),
    );
    chat.type("Hello\r");
    await chat.waitFor("the prompt after the answer", () => chat.prompts() >= 3);
    await chat.bye();
  },
);

test(
  "slash commands under a real terminal: /? lists them, /set and /show answer, /bye leaves",
  { skip: SKIP },
  async (t) => {
    const chat = await chatInTerminal(t, ["--max-tokens", "4", "--temperature", "0"]);
    chat.type("/?\r");
    await chat.waitFor("the help", () => /Available commands:[\s\S]*\/set parameter[\s\S]*>>> /.test(chat.screen()));
    chat.type("/set parameter seed 42\r");
    await chat.waitFor("the confirmation", () => chat.screen().includes("Set parameter 'seed' to '42'."));
    chat.type("/show parameters\r");
    await chat.waitFor("the parameters", () => /Parameters:[\s\S]*seed\s+42/.test(chat.screen()));
    await chat.bye();
  },
);
