// Read a YAML file with js-yaml (YAML 1.2 core schema) and print it as JSON.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";

console.log(JSON.stringify(yaml.load(readFileSync(process.argv[2], "utf8"))));
