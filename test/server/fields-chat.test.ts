/** Every chat completions field the openai client declares: honoured, refused, or without effect (see the helper). */
import { it } from "node:test";
import { assertReadmeListsFieldsWithoutEffect, walkRequestFields } from "../../testkit/request-fields.js";

walkRequestFields("/v1/chat/completions");
it("the README lists every field accepted without effect", assertReadmeListsFieldsWithoutEffect);
