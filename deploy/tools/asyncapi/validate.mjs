// Validate the AsyncAPI document with the reference parser (@asyncapi/parser, pinned in
// package-lock.json). Relative $refs (./events/*.json) resolve from the document's folder.
// Usage: node validate.mjs ../../../schemas/asyncapi.json ; exit 1 on any error diagnostic.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Parser, fromFile } from "@asyncapi/parser";

const path = resolve(process.argv[2] ?? "schemas/asyncapi.json");
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, path).parse({
  source: pathToFileURL(path).href,
});
const errors = diagnostics.filter((d) => d.severity === 0);
// errors and warnings only (info/hint: e.g. "a newer AsyncAPI version exists")
for (const d of diagnostics.filter((x) => x.severity <= 1)) {
  const level = ["error", "warning", "info", "hint"][d.severity];
  console.error(`${level}: ${d.code}: ${d.message} at ${d.path.join(".")}`);
}
if (errors.length > 0 || document === undefined) {
  console.error(`asyncapi: ${path} is invalid (${errors.length} errors)`);
  process.exit(1);
}
console.log(
  `asyncapi: ${path} is valid AsyncAPI ${document.version()}: ` +
    `${document.channels().length} channels, ${document.operations().length} operations, ` +
    `${document.servers().length} servers`
);
