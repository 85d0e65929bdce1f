/**
 * One name resolver for every door: the CLI (`models info`), `/v1` (`/v1/models/NAME`) and `/api` (`/api/show`) resolve
 * each spelling — file name, stem, `NAME:latest`, store tags, presets and their aliases — to the same model; and the
 * lists name each model once, in a form that resolves back: several tags of one Ollama blob keep their own ids,
 * `/api/tags` keeps tags and namespaces whole, `/api/ps` shows one loaded blob once. A preset's system message and
 * defaults reach the model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Ollama } from "ollama";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { runCli } from "../../testkit/cli.js";
import { TEST_BACKEND_ENV } from "../../testkit/models.js";
import { startTestServer } from "../../testkit/server.js";
import { ollamaModel } from "../../testkit/stores.js";

test("every door resolves every spelling to the same model; lists name each model once", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "tiny.gguf": { seed: 1 }, "llama/solo.gguf": { seed: 2 } } },
    config: {
      model_stores: ["ollama"],
      models: {
        fast: { file: "solo", aliases: ["quick"], context_size: 256, temperature: 0, system: "Be brief." },
      },
    },
  });
  const store = join(s.cwd, ".ollama", "models");
  const blob = tinyLlamaGguf({ seed: 5 });
  await ollamaModel(store, "phi3", "latest", blob);
  await ollamaModel(store, "phi3", "mini", blob);
  await ollamaModel(store, "model", "tag", tinyLlamaGguf({ seed: 6 }), { repository: "registry.ollama.ai/ns" });

  // [what a user types, the model's own name]
  const table: Array<[string, string]> = [
    ["tiny", "tiny.gguf"],
    ["tiny.gguf", "tiny.gguf"],
    ["tiny:latest", "tiny.gguf"],
    ["llama/solo.gguf", "llama/solo.gguf"],
    ["llama/solo", "llama/solo.gguf"],
    ["solo:latest", "llama/solo.gguf"],
    ["phi3", "phi3:latest"],
    ["phi3:latest", "phi3:latest"],
    ["phi3:mini", "phi3:mini"],
    ["ns/model:tag", "ns/model:tag"],
    ["fast", "fast"],
    ["fast:latest", "fast"],
    ["quick", "fast"],
    ["quick:latest", "fast"],
  ];
  const cliEnv = { ...s.env, ...TEST_BACKEND_ENV };
  const show = async (model: string) => {
    const response = await fetch(`${s.url}/api/show`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model }),
    });
    assert.equal(response.status, 200, `/api/show ${model}`);
    const { modified_at: _modified, ...rest } = (await response.json()) as Record<string, unknown>;
    return rest;
  };
  for (const [typed, name] of table) {
    const cli = await runCli(["--json", "models", "info", typed], { env: cliEnv, cwd: s.cwd });
    assert.equal(cli.code, 0, `CLI ${typed}: ${cli.stderr}`);
    assert.equal((JSON.parse(cli.stdout) as { name: string }).name, name, `CLI ${typed}`);
    const v1 = await s.getJson<{ file: string }>(`/v1/models/${encodeURIComponent(typed)}`);
    assert.equal(v1.status, 200, `/v1 ${typed}`);
    assert.equal(v1.body.file, name, `/v1 ${typed}`);
    assert.deepEqual(await show(typed), await show(name), `/api ${typed}`);
  }
  // The commands' help says which spellings the table above resolves.
  for (const command of [["run"], ["models", "info"]]) {
    const help = (await runCli([...command, "--help"], { env: cliEnv, cwd: s.cwd })).stdout.replace(/\s+/g, " ");
    for (const kind of ["file name or stem", "path in the models directory", "store tag", "preset", "alias"]) {
      assert.ok(help.includes(kind), `${command.join(" ")} --help names ${kind}: ${help}`);
    }
  }

  const ids = (await s.getJson<{ data: Array<{ id: string; file: string }> }>("/v1/models")).body.data;
  assert.deepEqual(
    ids.map((m) => [m.id, m.file]),
    [
      ["fast", "fast"],
      ["solo", "llama/solo.gguf"],
      ["model:tag", "ns/model:tag"],
      ["phi3", "phi3:latest"],
      ["phi3:mini", "phi3:mini"],
      ["tiny", "tiny.gguf"],
    ],
    "two tags of one blob keep two ids",
  );
  for (const { id, file } of ids) assert.equal((await s.getJson<{ file: string }>(`/v1/models/${id}`)).body.file, file);

  const ollama = new Ollama({ host: s.url });
  const tags = (await ollama.list()).models.map((m) => m.name).sort();
  assert.deepEqual(tags, ["fast:latest", "ns/model:tag", "phi3:latest", "phi3:mini", "solo:latest", "tiny:latest"]);

  // Two tags of one blob, both used: one cache entry, one /api/ps line.
  for (const model of ["phi3", "phi3:mini"]) {
    await ollama.generate({ model, prompt: "Hi", options: { temperature: 0, num_predict: 2 } });
  }
  const running = (await ollama.ps()).models.map((m) => m.name);
  assert.deepEqual(running, ["phi3:latest"]);
});

test("a preset's load settings, system message and sampling defaults reach the model (in a model host)", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "tiny.gguf": { seed: 1 } } },
    config: {
      // Model hosts: the preset's settings and defaults cross to the host process with the descriptor.
      backend: { isolation: "process" },
      // prompt_eval_count compares whole prompts here: no prefix reuse between the requests.
      cache: { prompt_cache: false },
      models: {
        greedy: { file: "tiny", context_size: 384, temperature: 0, system: "You answer in one word." },
        plain: { file: "tiny" },
      },
    },
  });
  const ollama = new Ollama({ host: s.url });
  const ask = async (model: string, options: Record<string, unknown> = {}) =>
    ollama.chat({ model, messages: [{ role: "user", content: "Hello" }], options: { num_predict: 8, ...options } });
  const preset = await ask("greedy");
  const bare = await ask("tiny", { temperature: 0 });
  const withSystem = await ollama.chat({
    model: "tiny",
    messages: [
      { role: "system", content: "You answer in one word." },
      { role: "user", content: "Hello" },
    ],
    options: { num_predict: 8, temperature: 0 },
  });
  assert.ok(preset.prompt_eval_count > bare.prompt_eval_count, "the preset's system message is in the prompt");
  assert.equal(preset.prompt_eval_count, withSystem.prompt_eval_count);
  assert.equal(preset.message.content, withSystem.message.content, "temperature 0 by default: the greedy answer");
  assert.equal((await ask("greedy")).message.content, preset.message.content);

  const loaded = (await s.getJson<{ data: Array<{ name: string; key: string }> }>("/v1/cache/models")).body.data;
  const entry = loaded.find((m) => m.name === "greedy");
  assert.ok(entry?.key.endsWith("tiny.gguf#preset=greedy,ctx=384"), entry?.key);
  const ps = (await ollama.ps()).models.find((m) => m.name === "greedy:latest") as unknown as {
    context_length: number;
  };
  assert.equal(ps.context_length, 384);
  // Another preset of the same file is another entry.
  await ask("plain", { temperature: 0 });
  const keys = (await s.getJson<{ data: Array<{ key: string }> }>("/v1/cache/models")).body.data.map((m) => m.key);
  assert.ok(
    keys.some((k) => k.endsWith("tiny.gguf#preset=plain")),
    keys.join(", "),
  );
});

test("an Ollama store model's Modelfile is honoured: PARAMETER num_ctx and temperature, SYSTEM", async (t) => {
  const s = await startTestServer(t, { models: { gguf: {} }, config: { model_stores: ["ollama"] } });
  const store = join(s.cwd, ".ollama", "models");
  const blob = tinyLlamaGguf({ seed: 7 });
  const system = "You answer in one word.";
  await ollamaModel(store, "terse", "latest", blob, {
    params: { num_ctx: 384, temperature: 0, stop: ["\n\n"] },
    system,
  });
  await ollamaModel(store, "bare", "latest", blob);
  const ollama = new Ollama({ host: s.url });
  const shown = await ollama.show({ model: "terse" });
  assert.equal(shown.system, system);
  assert.match(shown.parameters, /num_ctx\s+384/);

  const terse = await ollama.chat({
    model: "terse",
    messages: [{ role: "user", content: "Hello" }],
    options: { num_predict: 8 },
  });
  const bare = await ollama.chat({
    model: "bare",
    messages: [
      { role: "system", content: system },
      { role: "user", content: "Hello" },
    ],
    options: { num_predict: 8, temperature: 0, stop: ["\n\n"] },
  });
  assert.equal(terse.prompt_eval_count, bare.prompt_eval_count, "the SYSTEM message is in the prompt");
  assert.equal(terse.message.content, bare.message.content, "temperature 0 from the Modelfile: the greedy answer");
  const ps = (await ollama.ps()).models as unknown as Array<{ name: string; context_length: number }>;
  assert.equal(ps.find((m) => m.name === "terse:latest")?.context_length, 384);
  assert.equal(ps.find((m) => m.name === "bare:latest")?.context_length, s.config.backend.context_size);
});

test("an Ollama store model's Modelfile TEMPLATE (Go syntax) makes the prompt; one outside the subset falls back", async (t) => {
  // Whole prompts are compared: the prompt cache is off (prompt_eval_count counts evaluated tokens only).
  const s = await startTestServer(t, {
    models: { gguf: {} },
    // In model hosts: the template crosses to the host process with the descriptor.
    config: { model_stores: ["ollama"], cache: { prompt_cache: false }, backend: { isolation: "process" } },
  });
  const store = join(s.cwd, ".ollama", "models");
  const blob = tinyLlamaGguf({ seed: 3 });
  const legacy = "{{ if .System }}<<{{ .System }}>>\n{{ end }}[INST] {{ .Prompt }} [/INST]{{ .Response }}\n";
  const messages = "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:";
  const unsupported = "{{ if .Tools }}{{ json .Tools }}{{ end }}{{ .Prompt }}";
  await ollamaModel(store, "legacy", "latest", blob, { template: legacy });
  await ollamaModel(store, "messages", "latest", blob, { template: messages });
  await ollamaModel(store, "unsupported", "latest", blob, { template: unsupported });
  await ollamaModel(store, "plain", "latest", blob, { template: "{{ .Prompt }}" });
  await ollamaModel(store, "bare", "latest", blob);
  const ollama = new Ollama({ host: s.url });
  assert.equal((await ollama.show({ model: "legacy" })).template, legacy);
  assert.equal((await ollama.show({ model: "unsupported" })).template, unsupported);
  assert.equal((await ollama.show({ model: "bare" })).template, "");

  const options = { num_predict: 6, temperature: 0 };
  const conversation = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Name a colour" },
  ];
  const chat = (model: string) => ollama.chat({ model, messages: conversation, options });
  const expected = {
    legacy: "<<Be brief.>>\n[INST] Hi [/INST]Hello\n[INST] Name a colour [/INST]",
    messages: "system: Be brief.\nuser: Hi\nassistant: Hello\nuser: Name a colour\nassistant:",
  };
  for (const model of ["legacy", "messages"] as const) {
    // The text the template should render, given whole to a `{{ .Prompt }}` template: the same tokens, the same answer.
    const direct = await ollama.chat({
      model: "plain",
      messages: [{ role: "user", content: expected[model] }],
      options,
    });
    const templated = await chat(model);
    assert.equal(templated.prompt_eval_count, direct.prompt_eval_count, `${model}: the rendered template`);
    assert.equal(templated.message.content, direct.message.content, `${model}: the greedy answer to that prompt`);
  }
  const raw = await ollama.generate({ model: "bare", prompt: expected.messages, raw: true, options });
  assert.ok(Math.abs(raw.prompt_eval_count - (await chat("messages")).prompt_eval_count) <= 2, "the text, and no more");
  // Outside the subset (`.Tools`, `json`): the file's own chat template, as for the model without a TEMPLATE.
  const [fallback, own] = [await chat("unsupported"), await chat("bare")];
  assert.equal(fallback.prompt_eval_count, own.prompt_eval_count);
  assert.equal(fallback.message.content, own.message.content);
});

test("a preset's chat template replaces the file's own", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "tiny.gguf": { seed: 1 } } },
    config: {
      models: {
        bare: {
          file: "tiny",
          template: "{% for message in messages %}{{ message['content'] }}\n{% endfor %}",
        },
      },
    },
  });
  const ollama = new Ollama({ host: s.url });
  const chat = (model: string) =>
    ollama.chat({
      model,
      messages: [{ role: "user", content: "Hello there" }],
      options: { num_predict: 2, temperature: 0 },
    });
  const [own, replaced] = [await chat("tiny"), await chat("bare")];
  const raw = await ollama.generate({ model: "tiny", prompt: "Hello there\n", raw: true, options: { num_predict: 1 } });
  assert.ok(
    own.prompt_eval_count > replaced.prompt_eval_count,
    `${own.prompt_eval_count} vs ${replaced.prompt_eval_count}`,
  );
  assert.ok(Math.abs(replaced.prompt_eval_count - raw.prompt_eval_count) <= 2, "the template renders just the text");
});
