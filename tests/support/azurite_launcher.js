// Azurite's blob service for the test suite, with its blob GC loop held off.
//
// Azurite (3.35) runs a mark-and-sweep GC of unreferenced extents every 10 minutes.
// With in-memory persistence its sweep removes extents one by one from a Loki
// collection (O(n) each), inside one chain of resolved promises: the event loop
// serves no request meanwhile. Measured here: ~3 s for 1,500 extents; the suite
// makes tens of thousands in 10 minutes, so the sweep stalled Azurite for minutes
// (requests timed out after every retry). A test session is short-lived and its
// memory goes with the process, so the suite runs Azurite without that sweep.
//
// Usage: node azurite_launcher.js <Azurite's blob arguments>; AZURITE_BLOB_DIR is
// node_modules/azurite/dist/src/blob.
const path = require("path");

const blobDir = process.env.AZURITE_BLOB_DIR;
if (!blobDir) {
  console.error("AZURITE_BLOB_DIR is not set");
  process.exit(2);
}
const constants = require(path.join(blobDir, "utils", "constants.js"));
// The longest timer Node allows (~24.8 days); a larger value would fire at once.
constants.DEFAULT_GC_INTERVAL_MS = 2 ** 31 - 1;
require(path.join(blobDir, "main.js"));
