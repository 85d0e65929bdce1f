/** Every stress scenario, in the order `npm run stress` runs them. */
import type { Scenario } from "../scenario.js";
import { concurrentScenario } from "./concurrent.js";
import { configKeysScenario } from "./config-keys.js";
import { corruptStatesScenario } from "./corrupt-states.js";
import { disksScenario } from "./disks.js";
import { killSavesScenario } from "./kill-saves.js";

export const SCENARIOS = [killSavesScenario, corruptStatesScenario, configKeysScenario, disksScenario, concurrentScenario] as Array<Scenario<never>>;
