/** Every stress scenario, in the order `npm run stress` runs them. */
import type { Scenario } from "../scenario.js";
import { corruptStatesScenario } from "./corrupt-states.js";

export const SCENARIOS: Array<Scenario<never>> = [corruptStatesScenario as Scenario<never>];
