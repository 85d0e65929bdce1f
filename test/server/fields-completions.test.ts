/** Every completions field the openai client declares: honoured, refused, or without effect (see the helper). */
import { walkRequestFields } from "../../testkit/request-fields.js";

walkRequestFields("/v1/completions");
