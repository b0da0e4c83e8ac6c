// Validate AsyncAPI documents with the official parser; print one JSON line per file:
// {"file": ..., "errors": [{"message", "path"}], "warnings": n}. Exit 1 if any has errors.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const errors = diagnostics
    .filter((d) => d.severity === 0)
    .map((d) => ({ message: d.message, path: d.path.join("/"), code: d.code }));
  const warnings = diagnostics.filter((d) => d.severity === 1).map((d) => d.message);
  if (errors.length) failed = true;
  console.log(JSON.stringify({ file, errors, warnings }));
}
process.exit(failed ? 1 : 0);
