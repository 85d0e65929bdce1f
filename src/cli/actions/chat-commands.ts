/**
 * The slash commands of `inferno run`'s chat, as `ollama run` spells them: `/?` (`/help`), `/set parameter NAME VALUE`,
 * `/set system TEXT`, `/show info`, `/show parameters`, `/show system`, `/clear`, `/bye`. Parsing is pure: a line gives
 * a command (or a usage message), and the chat loop applies it to its state.
 */
import type { GenerationOptions } from "../../backends/types.js";

/** The sampling settings a chat can change with `/set parameter`. */
export type ChatSampling = Pick<
  GenerationOptions,
  "maxTokens" | "temperature" | "seed" | "topP" | "topK" | "minP" | "truncatePromptTokens"
>;

/** `/set parameter` names (Ollama's) and the setting each changes, with its check. */
const PARAMETERS: Record<string, { key: keyof ChatSampling; check: (n: number) => boolean; expected: string }> = {
  temperature: { key: "temperature", check: (n) => n >= 0, expected: "a number >= 0" },
  seed: { key: "seed", check: (n) => Number.isInteger(n) && n >= 0, expected: "a whole number >= 0" },
  num_predict: { key: "maxTokens", check: (n) => Number.isInteger(n) && n > 0, expected: "a positive whole number" },
  top_p: { key: "topP", check: (n) => n > 0 && n <= 1, expected: "a number in (0, 1]" },
  top_k: { key: "topK", check: (n) => Number.isInteger(n) && n >= 0, expected: "a whole number >= 0" },
  min_p: { key: "minP", check: (n) => n >= 0 && n <= 1, expected: "a number in [0, 1]" },
};

export const CHAT_HELP = [
  "Available commands:",
  "  /set parameter NAME VALUE   set a sampling parameter: " + Object.keys(PARAMETERS).join(", "),
  "  /set system TEXT            set the system message (the conversation so far stays)",
  "  /show info                  show the model's details",
  "  /show parameters            show the parameters set in this chat",
  "  /show system                show the system message",
  "  /clear                      forget the conversation so far (the system message stays)",
  "  /bye                        leave (also Ctrl-D)",
  "  /?, /help                   this help",
  "Ctrl-C stops an answer.",
].join("\n");

export type ChatCommand =
  | { kind: "bye" }
  | { kind: "help" }
  | { kind: "clear" }
  | { kind: "set-parameter"; key: keyof ChatSampling; name: string; value: number }
  | { kind: "set-system"; text: string }
  | { kind: "show"; what: "info" | "parameters" | "system" }
  /** A slash line that is no command, or a command used wrongly: the message says what to type. */
  | { kind: "usage"; message: string };

/** The command a slash line (`/…`, trimmed) asks for. */
export function parseChatCommand(line: string): ChatCommand {
  const [word = "", ...rest] = line.split(/\s+/);
  switch (word) {
    case "/bye":
    case "/exit":
      return { kind: "bye" };
    case "/?":
    case "/help":
      return { kind: "help" };
    case "/clear":
      return { kind: "clear" };
    case "/show": {
      const what = rest[0];
      if (what === "info" || what === "parameters" || what === "system") return { kind: "show", what };
      return { kind: "usage", message: "usage: /show info | /show parameters | /show system" };
    }
    case "/set":
      return parseSet(line, rest);
    default:
      return { kind: "usage", message: `unknown command ${word}: /? lists the commands` };
  }
}

function parseSet(line: string, rest: string[]): ChatCommand {
  const [what, name, value, ...extra] = rest;
  if (what === "system") {
    // The text as typed after `/set system`, quotes around it removed (Ollama accepts both).
    const text = line
      .replace(/^\/set\s+system\s*/, "")
      .replace(/^"(.*)"$/s, "$1")
      .trim();
    if (text === "") return { kind: "usage", message: "usage: /set system TEXT" };
    return { kind: "set-system", text };
  }
  if (what !== "parameter") return { kind: "usage", message: "usage: /set parameter NAME VALUE | /set system TEXT" };
  const parameter = name === undefined ? undefined : PARAMETERS[name];
  if (!parameter || value === undefined || extra.length > 0) {
    return {
      kind: "usage",
      message: `usage: /set parameter NAME VALUE, with NAME one of ${Object.keys(PARAMETERS).join(", ")}`,
    };
  }
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number) || !parameter.check(number)) {
    return { kind: "usage", message: `${name} expects ${parameter.expected}, found ${JSON.stringify(value)}` };
  }
  return { kind: "set-parameter", key: parameter.key, name: name as string, value: number };
}

/** The parameters a chat has set, as `/show parameters` lists them (Ollama's names). */
export function describeParameters(sampling: ChatSampling): string[] {
  return Object.entries(PARAMETERS)
    .filter(([, p]) => sampling[p.key] !== undefined)
    .map(([name, p]) => `${name.padEnd(12)} ${sampling[p.key]}`);
}
