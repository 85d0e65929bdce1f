/**
 * A node-llama-cpp chat wrapper that renders the chat through an Ollama Modelfile's Go `TEMPLATE` (see
 * ../models/go-template.ts), as Ollama does: the rendered text is tokenized with its special tokens (`<|im_start|>`…)
 * read as such, after the model's BOS. Offered functions are documented in a system message and called in
 * node-llama-cpp's generic syntax (the subset has no `.Tools`).
 */
import type * as NodeLlamaCppModule from "node-llama-cpp";
import type {
  ChatWrapper,
  ChatWrapperGenerateContextStateOptions,
  ChatWrapperGeneratedContextState,
} from "node-llama-cpp";
import { type GoTemplate, type OllamaChatMessage, renderOllamaPrompt } from "../models/go-template.js";

/** A chat wrapper running `template`, made from the loaded node-llama-cpp module `lib`. */
export function goTemplateChatWrapper(lib: typeof NodeLlamaCppModule, template: GoTemplate): ChatWrapper {
  const { LlamaText, SpecialToken, SpecialTokensText } = lib;
  class GoTemplateChatWrapper extends lib.ChatWrapper {
    readonly wrapperName = "OllamaGoTemplate";

    override generateContextState({
      chatHistory,
      availableFunctions,
      documentFunctionParams,
    }: ChatWrapperGenerateContextStateOptions): ChatWrapperGeneratedContextState {
      const history = this.addAvailableFunctionsSystemMessageToHistory(chatHistory, availableFunctions, {
        ...(documentFunctionParams !== undefined ? { documentParams: documentFunctionParams } : {}),
      });
      const messages: OllamaChatMessage[] = [];
      history.forEach((item, index) => {
        if (item.type === "system") {
          const text = typeof item.text === "string" ? item.text : LlamaText.fromJSON(item.text).toString();
          messages.push({ role: "system", content: text });
        } else if (item.type === "user") {
          messages.push({ role: "user", content: item.text });
        } else {
          const content = this.generateModelResponseText(item.response).toString();
          // The empty last model turn is the one to generate: the template ends where it starts.
          if (!(index === history.length - 1 && content === "")) messages.push({ role: "assistant", content });
        }
      });
      return {
        contextText: LlamaText([
          new SpecialToken("BOS"),
          new SpecialTokensText(renderOllamaPrompt(template, messages)),
        ]),
        stopGenerationTriggers: [LlamaText(new SpecialToken("EOS")), LlamaText(new SpecialToken("EOT"))],
      };
    }
  }
  return new GoTemplateChatWrapper();
}
