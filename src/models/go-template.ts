/**
 * The subset of Go's text/template that Ollama's Modelfile `TEMPLATE`s use, parsed and run without I/O: text, output
 * actions, `if`/`else if`/`else`, `range` (with `$i, $m :=`), variables and `$`, the fields Ollama's chat values have
 * (`.System`, `.Prompt`, `.Response`, `.Messages`, `.Role`, `.Content`), string/number/bool literals, parentheses,
 * the functions `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`, `len`, `slice` (of lists), comments, and the
 * trim markers `{{-` / `-}}`. Anything else (`.Tools`, `json`, `index`, pipes, `with`, `define`…) is refused at parse time with the construct named, so a caller
 * can fall back to another template rather than render a wrong prompt.
 *
 * `renderOllamaPrompt` follows Ollama's template.go: a template that uses `.Messages` renders the whole conversation
 * once; a legacy one (`.System`/`.Prompt`/`.Response` only) renders turn by turn, the last turn cut after `.Response`.
 */

/** A template that uses something outside the subset; `construct` names it. */
export class UnsupportedGoTemplate extends Error {
  constructor(readonly construct: string) {
    super(`the Go template uses ${construct}, which Inferno does not run`);
    this.name = "UnsupportedGoTemplate";
  }
}

type Expr =
  | { kind: "field"; base: "." | "$" | `$${string}`; path: string[] }
  | { kind: "literal"; value: string | number | boolean }
  | { kind: "call"; fn: string; args: Expr[] };

type TemplateNode =
  | { kind: "text"; text: string }
  | { kind: "output"; expr: Expr }
  | { kind: "assign"; name: string; declare: boolean; expr: Expr }
  | { kind: "if"; cond: Expr; body: TemplateNode[]; otherwise?: TemplateNode[] }
  | { kind: "range"; key?: string; value?: string; expr: Expr; body: TemplateNode[]; otherwise?: TemplateNode[] };

/** The fields Ollama's values have, on the top level and on each message. */
const FIELDS = new Set(["System", "Prompt", "Response", "Messages", "Role", "Content"]);
const FUNCTIONS = new Set(["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "len", "slice"]);
const SPACE = /^[ \t\r\n]*/;

export interface GoTemplate {
  readonly nodes: TemplateNode[];
  /** Whether it reads `.Messages` (then Ollama renders the whole conversation at once). */
  readonly usesMessages: boolean;
}

type Token = { kind: "word"; text: string } | { kind: "string"; value: string } | { kind: "punct"; text: string };

/** The tokens of one action's text. */
function tokenize(action: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < action.length) {
    const c = action[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      let raw = "";
      while (j < action.length && action[j] !== '"') {
        if (action[j] === "\\") raw += action[j++];
        raw += action[j++] ?? "";
      }
      if (j >= action.length) throw new UnsupportedGoTemplate("an unterminated string");
      tokens.push({ kind: "string", value: JSON.parse(`"${raw}"`) as string });
      i = j + 1;
    } else if (c === "`") {
      const j = action.indexOf("`", i + 1);
      if (j < 0) throw new UnsupportedGoTemplate("an unterminated string");
      tokens.push({ kind: "string", value: action.slice(i + 1, j) });
      i = j + 1;
    } else if (action.startsWith(":=", i)) {
      tokens.push({ kind: "punct", text: ":=" });
      i += 2;
    } else if ("()=,|".includes(c)) {
      tokens.push({ kind: "punct", text: c });
      i++;
    } else {
      const match = /^[^\s()=,|:"`]+/.exec(action.slice(i));
      if (!match) throw new UnsupportedGoTemplate(`"${c}"`);
      tokens.push({ kind: "word", text: match[0] });
      i += match[0].length;
    }
  }
  return tokens;
}

/** An operand or a function call, from `tokens` at `at` (advanced). */
function parseExpr(tokens: Token[], at: { i: number }): Expr {
  const first = parseOperand(tokens, at);
  if (first.kind !== "call" || first.args.length > 0 || !FUNCTIONS.has(first.fn)) return first;
  // A function name: its arguments run to the end of the command (or the closing parenthesis).
  const args: Expr[] = [];
  while (at.i < tokens.length) {
    const next = tokens[at.i] as Token;
    if (next.kind === "punct" && next.text === ")") break;
    args.push(parseOperand(tokens, at));
  }
  return { kind: "call", fn: first.fn, args };
}

function parseOperand(tokens: Token[], at: { i: number }): Expr {
  const token = tokens[at.i++];
  if (!token) throw new UnsupportedGoTemplate("an empty action");
  if (token.kind === "string") return { kind: "literal", value: token.value };
  if (token.kind === "punct") {
    if (token.text !== "(") throw new UnsupportedGoTemplate(punctName(token.text));
    const inner = parseExpr(tokens, at);
    const close = tokens[at.i++];
    if (close?.kind !== "punct" || close.text !== ")") throw new UnsupportedGoTemplate("an unclosed parenthesis");
    return inner;
  }
  const word = token.text;
  if (word === "true" || word === "false") return { kind: "literal", value: word === "true" };
  if (/^-?\d+(\.\d+)?$/.test(word)) return { kind: "literal", value: Number(word) };
  const field = /^(\.|\$[A-Za-z0-9_]*)?((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$/.exec(word);
  if (field && (field[1] !== undefined || word.startsWith("."))) {
    const path = (field[2] ?? "").split(".").filter(Boolean);
    for (const name of path) if (!FIELDS.has(name)) throw new UnsupportedGoTemplate(`.${name}`);
    const base = (field[1] === undefined || field[1] === "." ? "." : field[1]) as "." | "$" | `$${string}`;
    return { kind: "field", base, path };
  }
  if (FUNCTIONS.has(word)) return { kind: "call", fn: word, args: [] };
  throw new UnsupportedGoTemplate(/^[A-Za-z_]\w*$/.test(word) ? `the function "${word}"` : `"${word}"`);
}

function punctName(text: string): string {
  return text === "|" ? "a pipe (|)" : `"${text}"`;
}

/** The whole of one action as one expression (nothing left over). */
function wholeExpr(tokens: Token[], from: number): Expr {
  const at = { i: from };
  const expr = parseExpr(tokens, at);
  if (at.i < tokens.length) {
    const rest = tokens[at.i] as Token;
    throw new UnsupportedGoTemplate(rest.kind === "punct" ? punctName(rest.text) : "an operand after a value");
  }
  if (expr.kind === "call" && !FUNCTIONS.has(expr.fn)) throw new UnsupportedGoTemplate(`the function "${expr.fn}"`);
  return expr;
}

type Frame = { kind: "root" } | { kind: "if" | "range"; node: TemplateNode; into: "body" | "otherwise" };

/** Parses `text`; throws `UnsupportedGoTemplate` naming what is outside the subset. */
export function parseGoTemplate(text: string): GoTemplate {
  const root: TemplateNode[] = [];
  const stack: Array<{ frame: Frame; list: TemplateNode[] }> = [{ frame: { kind: "root" }, list: root }];
  const current = () => stack[stack.length - 1] as { frame: Frame; list: TemplateNode[] };
  let usesMessages = false;
  let pos = 0;
  let trimNext = false;
  while (pos < text.length) {
    const open = text.indexOf("{{", pos);
    let chunk = text.slice(pos, open < 0 ? text.length : open);
    if (trimNext) chunk = chunk.replace(SPACE, "");
    if (open < 0) {
      if (chunk) current().list.push({ kind: "text", text: chunk });
      break;
    }
    const trimBefore = /^\{\{-[ \t\r\n]/.test(text.slice(open, open + 4));
    if (trimBefore) chunk = chunk.replace(/[ \t\r\n]*$/, "");
    if (chunk) current().list.push({ kind: "text", text: chunk });
    const close = findClose(text, open + 2);
    if (close < 0) throw new UnsupportedGoTemplate("an unclosed action");
    const trimAfter = /[ \t\r\n]-$/.test(text.slice(close - 2, close));
    const inner = text.slice(open + (trimBefore ? 3 : 2), trimAfter ? close - 1 : close).trim();
    pos = close + 2;
    trimNext = trimAfter;
    if (inner.startsWith("/*")) {
      if (!inner.endsWith("*/")) throw new UnsupportedGoTemplate("an unclosed comment");
      continue;
    }
    if (/\.Messages\b/.test(inner)) usesMessages = true;
    const tokens = tokenize(inner);
    const head = tokens[0];
    const keyword = head?.kind === "word" ? head.text : undefined;
    if (keyword === "if") {
      const node: TemplateNode = { kind: "if", cond: wholeExpr(tokens, 1), body: [] };
      current().list.push(node);
      stack.push({ frame: { kind: "if", node, into: "body" }, list: node.body });
    } else if (keyword === "range") {
      const node = parseRange(tokens);
      current().list.push(node);
      stack.push({ frame: { kind: "range", node, into: "body" }, list: node.body });
    } else if (keyword === "else") {
      const top = current();
      if (top.frame.kind === "root" || top.frame.into === "otherwise") throw new UnsupportedGoTemplate("a stray else");
      const node = top.frame.node as Extract<TemplateNode, { kind: "if" | "range" }>;
      node.otherwise = [];
      stack.pop();
      const after = tokens[1];
      if (after?.kind === "word" && after.text === "if" && node.kind === "if") {
        // `else if`: an `if` alone in the else branch, closed by the same `end` (so its frame replaces this one).
        const nested: TemplateNode = { kind: "if", cond: wholeExpr(tokens, 2), body: [] };
        node.otherwise.push(nested);
        stack.push({ frame: { kind: "if", node: nested, into: "body" }, list: nested.body });
      } else if (tokens.length > 1) {
        throw new UnsupportedGoTemplate(after?.kind === "word" ? `else ${after.text}` : "else with arguments");
      } else {
        stack.push({ frame: { ...top.frame, into: "otherwise" }, list: node.otherwise });
      }
    } else if (keyword === "end") {
      if (tokens.length > 1 || current().frame.kind === "root") throw new UnsupportedGoTemplate("a stray end");
      stack.pop();
    } else if (keyword && /^(with|define|template|block|break|continue|nil)$/.test(keyword)) {
      throw new UnsupportedGoTemplate(`{{ ${keyword} }}`);
    } else if (head?.kind === "word" && head.text.startsWith("$") && tokens[1]?.kind === "punct") {
      const op = (tokens[1] as { text: string }).text;
      if (op !== ":=" && op !== "=") throw new UnsupportedGoTemplate(`"${op}"`);
      current().list.push({ kind: "assign", name: head.text, declare: op === ":=", expr: wholeExpr(tokens, 2) });
    } else {
      current().list.push({ kind: "output", expr: wholeExpr(tokens, 0) });
    }
  }
  if (stack.length > 1) throw new UnsupportedGoTemplate("an unclosed if or range");
  checkVariables(root, [new Set(["$"])]);
  return { nodes: root, usesMessages };
}

/** Every variable used is declared before, in an enclosing scope (Go refuses the template otherwise, when parsing). */
function checkVariables(nodes: readonly TemplateNode[], scopes: Array<Set<string>>) {
  const check = (expr: Expr) => {
    if (expr.kind === "call") expr.args.forEach(check);
    else if (expr.kind === "field" && expr.base !== "." && !scopes.some((scope) => scope.has(expr.base)))
      throw new UnsupportedGoTemplate(`the undefined variable ${expr.base}`);
  };
  const own = scopes[scopes.length - 1] as Set<string>;
  for (const node of nodes) {
    if (node.kind === "text") continue;
    if (node.kind === "output") check(node.expr);
    else if (node.kind === "assign") {
      check(node.expr);
      if (node.declare) own.add(node.name);
      else check({ kind: "field", base: node.name as `$${string}`, path: [] });
    } else if (node.kind === "if") {
      check(node.cond);
      checkVariables(node.body, [...scopes, new Set()]);
      if (node.otherwise) checkVariables(node.otherwise, [...scopes, new Set()]);
    } else {
      check(node.expr);
      checkVariables(node.body, [...scopes, new Set([node.key, node.value].filter((v) => v !== undefined))]);
      if (node.otherwise) checkVariables(node.otherwise, [...scopes, new Set()]);
    }
  }
}

/** The `}}` that ends the action opened before `from`, skipping string literals. */
function findClose(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "`") {
      i++;
      while (i < text.length && text[i] !== c) i += text[i] === "\\" && c === '"' ? 2 : 1;
    } else if (c === "}" && text[i + 1] === "}") {
      return i;
    }
  }
  return -1;
}

function parseRange(tokens: Token[]): Extract<TemplateNode, { kind: "range" }> {
  const declare = tokens.findIndex((t) => t.kind === "punct" && t.text === ":=");
  if (declare < 0) return { kind: "range", expr: wholeExpr(tokens, 1), body: [] };
  const names = tokens.slice(1, declare).filter((t) => !(t.kind === "punct" && t.text === ","));
  if (names.length < 1 || names.length > 2 || names.some((t) => t.kind !== "word" || !t.text.startsWith("$")))
    throw new UnsupportedGoTemplate("a range declaration");
  const [a, b] = names.map((t) => (t as { text: string }).text);
  const expr = wholeExpr(tokens, declare + 1);
  return b === undefined
    ? { kind: "range", value: a, expr, body: [] }
    : { kind: "range", key: a, value: b, expr, body: [] };
}

/** One message as a template sees it (`.Role`, `.Content`). */
export interface GoTemplateMessage {
  Role: string;
  Content: string;
}

type Value = unknown;

function truthy(value: Value): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  return true;
}

function printed(value: Value): string {
  if (value === undefined || value === null) return "<no value>";
  if (Array.isArray(value)) return `[${value.map(printed).join(" ")}]`;
  if (typeof value === "object") return `{${Object.values(value).map(printed).join(" ")}}`;
  return String(value);
}

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}
  get(name: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name);
    throw new UnsupportedGoTemplate(`the undefined variable ${name}`);
  }
  declare(name: string, value: Value) {
    this.vars.set(name, value);
  }
  assign(name: string, value: Value) {
    if (this.vars.has(name) || !this.parent) this.vars.set(name, value);
    else this.parent.assign(name, value);
  }
}

function evaluate(expr: Expr, dot: Value, scope: Scope): Value {
  if (expr.kind === "literal") return expr.value;
  if (expr.kind === "field") {
    let value = expr.base === "." ? dot : scope.get(expr.base);
    for (const name of expr.path)
      value = value && typeof value === "object" ? (value as Record<string, Value>)[name] : undefined;
    return value;
  }
  const args = () => expr.args.map((a) => evaluate(a, dot, scope));
  switch (expr.fn) {
    case "eq": {
      const [first, ...rest] = args();
      return rest.some((v) => v === first);
    }
    case "ne": {
      const [a, b] = args();
      return a !== b;
    }
    case "lt":
    case "le":
    case "gt":
    case "ge": {
      const [a, b] = args();
      if (typeof a !== typeof b || (typeof a !== "number" && typeof a !== "string")) return false;
      const [x, y] = [a as number | string, b as number | string];
      return expr.fn === "lt" ? x < y : expr.fn === "le" ? x <= y : expr.fn === "gt" ? x > y : x >= y;
    }
    case "slice": {
      // Lists only (Ollama's `slice $.Messages $i`): a string's byte offsets are left alone.
      const [value, from, to] = args();
      if (!Array.isArray(value)) return value;
      return value.slice(typeof from === "number" ? from : 0, typeof to === "number" ? to : value.length);
    }
    case "not":
      return !truthy(args()[0]);
    case "len": {
      const value = args()[0];
      if (typeof value === "string") return Buffer.byteLength(value, "utf8");
      return Array.isArray(value) ? value.length : 0;
    }
    case "and": {
      let value: Value = true;
      for (const arg of expr.args) if (!truthy((value = evaluate(arg, dot, scope)))) return value;
      return value;
    }
    default: {
      let value: Value = false;
      for (const arg of expr.args) if (truthy((value = evaluate(arg, dot, scope)))) return value;
      return value;
    }
  }
}

function run(nodes: readonly TemplateNode[], dot: Value, scope: Scope, out: string[]) {
  for (const node of nodes) {
    switch (node.kind) {
      case "text":
        out.push(node.text);
        break;
      case "output":
        out.push(printed(evaluate(node.expr, dot, scope)));
        break;
      case "assign":
        if (node.declare) scope.declare(node.name, evaluate(node.expr, dot, scope));
        else scope.assign(node.name, evaluate(node.expr, dot, scope));
        break;
      case "if":
        if (truthy(evaluate(node.cond, dot, scope))) run(node.body, dot, new Scope(scope), out);
        else if (node.otherwise) run(node.otherwise, dot, new Scope(scope), out);
        break;
      case "range": {
        const items = evaluate(node.expr, dot, scope);
        const list = Array.isArray(items) ? items : [];
        if (list.length === 0) {
          if (node.otherwise) run(node.otherwise, dot, new Scope(scope), out);
          break;
        }
        list.forEach((item: Value, index) => {
          const inner = new Scope(scope);
          if (node.key) inner.declare(node.key, index);
          if (node.value) inner.declare(node.value, item);
          run(node.body, item, inner, out);
        });
        break;
      }
    }
  }
}

/** `template` run on `data` (`$` and the first `.`). */
export function executeGoTemplate(template: GoTemplate | readonly TemplateNode[], data: Record<string, Value>): string {
  const nodes = "nodes" in template ? template.nodes : template;
  const scope = new Scope();
  scope.declare("$", data);
  const out: string[] = [];
  run(nodes, data, scope, out);
  return out.join("");
}

function readsResponse(expr: Expr): boolean {
  if (expr.kind === "field") return expr.base === "." && expr.path.includes("Response");
  return expr.kind === "call" && expr.args.some(readsResponse);
}

/**
 * The template with everything after its first `.Response` output removed (Ollama's `deleteNode` for the last turn:
 * the model writes the response, so what follows it in the template is not part of the prompt). Conditions are not
 * looked at, as in Ollama.
 */
function cutAfterResponse(nodes: readonly TemplateNode[]): TemplateNode[] {
  let cut = false;
  const walk = (list: readonly TemplateNode[]): TemplateNode[] => {
    const kept: TemplateNode[] = [];
    for (const node of list) {
      if (cut) break;
      if (node.kind === "text") kept.push(node);
      else if (node.kind === "output" || node.kind === "assign") {
        kept.push(node);
        if (readsResponse(node.expr)) cut = true;
      } else {
        const body = walk(node.body);
        const otherwise = node.otherwise && !cut ? walk(node.otherwise) : undefined;
        kept.push({ ...node, body, ...(otherwise ? { otherwise } : { otherwise: undefined }) } as TemplateNode);
      }
    }
    return kept;
  };
  return walk(nodes);
}

/** A chat message for `renderOllamaPrompt`. */
export interface OllamaChatMessage {
  role: string;
  content: string;
}

/**
 * The prompt Ollama builds from `template` for `messages` (the assistant's reply to come next). Consecutive messages
 * of one role are joined with a blank line and the system messages make `.System`, as in Ollama's `collate`.
 */
export function renderOllamaPrompt(template: GoTemplate, messages: readonly OllamaChatMessage[]): string {
  const system = messages.filter((m) => m.role === "system").map((m) => m.content);
  const collated: GoTemplateMessage[] = [];
  for (const m of messages) {
    const last = collated[collated.length - 1];
    if (last && last.Role === m.role) last.Content += `\n\n${m.content}`;
    else collated.push({ Role: m.role, Content: m.content });
  }
  if (template.usesMessages) {
    return executeGoTemplate(template, { System: system.join("\n\n"), Messages: collated, Response: "" });
  }
  // A legacy template: one rendering per turn, the last one cut after `.Response`.
  const out: string[] = [];
  let turn = { System: "", Prompt: "", Response: "" };
  const flush = () => {
    out.push(executeGoTemplate(template, turn));
    turn = { System: "", Prompt: "", Response: "" };
  };
  for (const m of collated) {
    if (m.Role === "system") {
      if (turn.Prompt !== "" || turn.Response !== "") flush();
      turn.System = m.Content;
    } else if (m.Role === "user") {
      if (turn.Response !== "") flush();
      turn.Prompt = m.Content;
    } else if (m.Role === "assistant") {
      turn.Response = m.Content;
    }
  }
  out.push(executeGoTemplate(cutAfterResponse(template.nodes), turn));
  return out.join("");
}
