// onnxruntime-node's install script (its only user of global-agent) calls `bootstrap()` before it reads its install
// flag, then downloads the CUDA execution provider from NuGet unless ONNXRUNTIME_NODE_INSTALL says "skip". Inferno runs
// on the CPU binaries the npm package ships, and an offline or proxied install must not fail on that download. Setting
// the flag here (through package.json "overrides") replaces the old `.npmrc` key, which npm 11 warns about on every
// command. A value the user set in the environment (e.g. ONNXRUNTIME_NODE_INSTALL=cuda12) wins.
"use strict";

function bootstrap() {
  if (!process.env.ONNXRUNTIME_NODE_INSTALL && !process.env.npm_config_onnxruntime_node_install) {
    process.env.ONNXRUNTIME_NODE_INSTALL = "skip";
  }
  return true;
}

module.exports = { bootstrap };
