/** Every chat completions field the openai client declares: honoured, refused, or without effect (see the helper). */
import { it } from "node:test";
import { assertDocsListFieldsWithoutEffect, walkRequestFields } from "../helpers/request-fields.js";

walkRequestFields("/v1/chat/completions");
it("docs/api.md lists every field accepted without effect", assertDocsListFieldsWithoutEffect);
