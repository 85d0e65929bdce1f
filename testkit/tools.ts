/** The tool the tool-calling tests offer, in the shape OpenAI's and Ollama's clients share. */

/** `get_weather`: a city out of two and a unit flag, both required. */
export const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Rome"] }, celsius: { type: "boolean" } },
      required: ["city", "celsius"],
    },
  },
};
