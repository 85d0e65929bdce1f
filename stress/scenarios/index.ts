/** Every stress scenario, in the order `npm run stress` runs them. */
import type { Scenario } from "../../testkit/scenario.js";
import { concurrentScenario } from "./concurrent.js";
import { browserScenario } from "./browser.js";
import { configKeysScenario } from "./config-keys.js";
import { corruptStatesScenario } from "./corrupt-states.js";
import { disksScenario } from "./disks.js";
import { hostileInputScenario } from "./hostile-input.js";
import { hungHostScenario } from "./hung-host.js";
import { killSavesScenario } from "./kill-saves.js";
import { lostUpdatesScenario } from "./lost-updates.js";
import { securityScenario } from "./security.js";

export const SCENARIOS = [
  killSavesScenario,
  lostUpdatesScenario,
  corruptStatesScenario,
  configKeysScenario,
  disksScenario,
  concurrentScenario,
  securityScenario,
  browserScenario,
  hostileInputScenario,
  hungHostScenario,
] as Array<Scenario<never>>;
