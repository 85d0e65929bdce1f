/**
 * The Go text/template subset Ollama's Modelfile templates use: Ollama's common template shapes rendered as Ollama
 * renders them (whole conversation with `.Messages`, turn by turn for legacy ones), trim markers, and the constructs
 * outside the subset refused with their name.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  executeGoTemplate,
  parseGoTemplate,
  renderOllamaPrompt,
  UnsupportedGoTemplate,
} from "../../src/models/go-template.js";

const PHI3 =
  "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}<|assistant|>\n{{ .Response }}<|end|>\n";

const CHATML = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`;

const LLAMA3 = `{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $m := .Messages }}
{{- if ne $m.Role "system" }}<|start_header_id|>{{ $m.Role }}<|end_header_id|>

{{ $m.Content }}<|eot_id|>
{{- end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

`;

const conversation = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "Name a colour." },
];

test("a legacy template renders turn by turn, the last turn cut after .Response", () => {
  const rendered = renderOllamaPrompt(parseGoTemplate(PHI3), conversation);
  assert.equal(
    rendered,
    "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n" +
      "<|user|>\nName a colour.<|end|>\n<|assistant|>\n",
  );
  assert.equal(
    renderOllamaPrompt(parseGoTemplate(PHI3), [{ role: "user", content: "Hi" }]),
    "<|user|>\nHi<|end|>\n<|assistant|>\n",
  );
});

test("a .Messages template renders the whole conversation at once", () => {
  assert.equal(
    renderOllamaPrompt(parseGoTemplate(CHATML), conversation),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
      "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    renderOllamaPrompt(parseGoTemplate(LLAMA3), conversation.slice(0, 2)),
    "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" +
      "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  );
});

test("Ollama's Gemma 2 template (is-last by slice, else if) renders as Ollama renders it", () => {
  const gemma = `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}`;
  assert.equal(
    renderOllamaPrompt(parseGoTemplate(gemma), conversation.slice(1)),
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n" +
      "<start_of_turn>user\nName a colour.<end_of_turn>\n<start_of_turn>model\n",
  );
});

test("consecutive messages of one role are joined, as Ollama collates them", () => {
  const rendered = renderOllamaPrompt(parseGoTemplate(CHATML), [
    { role: "user", content: "a" },
    { role: "user", content: "b" },
  ]);
  assert.equal(rendered, "<|im_start|>user\na\n\nb<|im_end|>\n<|im_start|>assistant\n");
});

test("actions, conditions, functions and variables follow Go's text/template", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["a  {{- `x` -}}  b", {}, "axb"],
    ['{{ if eq .Role "user" }}U{{ else if eq .Role "assistant" }}A{{ else }}S{{ end }}', { Role: "assistant" }, "A"],
    ['{{ if eq .Role "user" }}U{{ else if eq .Role "assistant" }}A{{ else }}S{{ end }}', { Role: "tool" }, "S"],
    ['{{ if eq .Role "tool" "user" }}yes{{ end }}', { Role: "user" }, "yes"],
    ["{{ if and .System (not .Prompt) }}only system{{ end }}", { System: "s", Prompt: "" }, "only system"],
    ['{{ or .Prompt "fallback" }}', { Prompt: "" }, "fallback"],
    ["{{ len .Messages }} {{ len .System }}", { Messages: [1, 2, 3], System: "héllo" }, "3 6"],
    [
      "{{ range $i, $m := .Messages }}{{ if $i }},{{ end }}{{ $m.Content }}{{ end }}",
      { Messages: [{ Content: "x" }, { Content: "y" }] },
      "x,y",
    ],
    [
      "{{ range .Messages }}{{ .Content }}{{ $.System }}{{ end }}",
      { System: "!", Messages: [{ Content: "a" }, { Content: "b" }] },
      "a!b!",
    ],
    ["{{ range .Messages }}x{{ else }}none{{ end }}", { Messages: [] }, "none"],
    ["{{ $last := eq (len .Messages) 2 }}{{ if $last }}two{{ end }}", { Messages: [1, 2] }, "two"],
    ["{{/* a comment */}}kept", {}, "kept"],
    [
      "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}{{ if $last }}last:{{ end }}{{ .Content }} {{ end }}",
      { Messages: [{ Content: "a" }, { Content: "b" }] },
      "a last:b ",
    ],
    [
      "{{ if le (len .Messages) 2 }}short{{ end }}{{ if gt (len .Messages) 1 }} many{{ end }}",
      { Messages: [1, 2] },
      "short many",
    ],
    ['{{ if ne .Role "system" }}{{ .Role }}{{ end }}', { Role: "user" }, "user"],
  ];
  for (const [template, data, expected] of cases) {
    assert.equal(executeGoTemplate(parseGoTemplate(template), data), expected, template);
  }
});

test("trim markers remove the whitespace next to them and nothing else", () => {
  assert.equal(executeGoTemplate(parseGoTemplate("a \n {{- .Prompt -}} \n b"), { Prompt: "P" }), "aPb");
  assert.equal(executeGoTemplate(parseGoTemplate("a \n {{ .Prompt -}} \n b"), { Prompt: "P" }), "a \n Pb");
  assert.equal(executeGoTemplate(parseGoTemplate("a \n {{- .Prompt }} \n b"), { Prompt: "P" }), "aP \n b");
});

test("constructs outside the subset are refused, naming them", () => {
  const cases: Array<[string, RegExp]> = [
    ["{{ if .Tools }}{{ json .Tools }}{{ end }}", /\.Tools/],
    ['{{ printf "%s" .Prompt }}', /"printf"/],
    ['{{ .Prompt | printf "%s" }}', /pipe/],
    ["{{ with .System }}{{ . }}{{ end }}", /with/],
    ['{{ template "x" }}', /template/],
    ["{{ if .System }}unclosed", /unclosed/],
    ["{{ .Suffix }}", /\.Suffix/],
    ["{{ index .Messages 0 }}", /"index"/],
    ["{{ range .Messages }}{{ $m.Content }}{{ end }}", /undefined variable \$m/],
    ["{{ range $m := .Messages }}{{ end }}{{ $m.Content }}", /undefined variable \$m/],
    ["{{ $x = 1 }}", /undefined variable \$x/],
  ];
  for (const [template, construct] of cases) {
    assert.throws(
      () => parseGoTemplate(template),
      (error: unknown) => error instanceof UnsupportedGoTemplate && construct.test(error.construct),
      template,
    );
  }
});
