// chat_golden.js — golden chat-template renderings from @huggingface/jinja.
//
// Usage: node chat_golden.js NPMDIR QWEN3_TOKENIZER_CONFIG OUT.json
// Renders each conversation below with each template, as HF's
// apply_chat_template(messages, tokenize=False, add_generation_prompt) does
// (the template gets messages, add_generation_prompt, bos_token, eos_token),
// and writes [{template, tpl, bos, eos, gen, messages, text}, ...].
//
// Templates: "qwen3" is the real one shipped in the Qwen3 tokenizer config;
// the others are transcriptions of the published Qwen2-Instruct,
// Qwen2.5-Instruct (complete, tool branches included), Llama-3-Instruct and
// Llama-3.1-Instruct (tool branches left out) templates. A template that
// fails to render a conversation is an error here (we never skip silently).
//
// Known difference from Python's Jinja2 (which HF transformers uses): this
// engine's strip/lstrip/rstrip ignore their argument and remove all
// whitespace, where Python's str.lstrip('\n') removes only newlines. Qwen3's
// template strips assistant turns with '\n', so no conversation below has
// other whitespace where those strips stop; test_chat.c checks that case by
// hand.
"use strict";
const fs = require("fs");
const path = require("path");

const [npmdir, qwen3cfg, outfile] = process.argv.slice(2);
if (!npmdir || !qwen3cfg || !outfile) {
	console.error("usage: node chat_golden.js NPMDIR QWEN3_TOKENIZER_CONFIG OUT.json");
	process.exit(2);
}
const { Template } = require(path.resolve(npmdir, "node_modules", "@huggingface", "jinja"));

const qwen25 = `{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
`;

const qwen2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const llama3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

const llama31 = `{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
`;

const templates = {
	qwen3: { tpl: JSON.parse(fs.readFileSync(qwen3cfg, "utf8")).chat_template, bos: null, eos: "<|im_end|>" },
	qwen25: { tpl: qwen25, bos: null, eos: "<|im_end|>" },
	qwen2: { tpl: qwen2, bos: null, eos: "<|im_end|>" },
	llama3: { tpl: llama3, bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
	llama31: { tpl: llama31, bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
};

// The reference's prompt (iapo-reference §2.2), written out independently of src/rl/dataset.c.
const R1 = "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n" +
	"    The assistant first thinks about the reasoning process in the mind and then provides the user\n" +
	"    with the answer. The reasoning process and answer are enclosed within <think> and\n" +
	"    <answer> tags, respectively, i.e., <think> reasoning process here </think>\n" +
	"    <answer> answer here </answer>.";
const ONESHOT_U = "What is 2+2?";
const ONESHOT_A = "<think>To calculate 2+2, we simply add the numbers together: 2 + 2 = 4.</think>\n<answer>4</answer>";
const sys = (c) => ({ role: "system", content: c });
const user = (c) => ({ role: "user", content: c });
const asst = (c) => ({ role: "assistant", content: c });

const conversations = [
	// the reference's GSM8K and MATH prompts
	[[sys(R1 + "\nThe answer must be a single integer."), user(ONESHOT_U), asst(ONESHOT_A),
		user("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to her friends in May. How many clips did Natalia sell altogether in April and May?")], true],
	[[sys(R1 + "\n"), user(ONESHOT_U), asst(ONESHOT_A), user("Compute $\\frac{1}{2} + \\frac{1}{3}$.")], true],
	[[sys(R1 + "\n"), user("Q")], false],
	// no system message: Qwen2/2.5's default applies, Qwen3 has none
	[[user("Hi"), asst("Hello!"), user("  Bye \n")], true],
	[[user("One")], false],
	// Qwen3's reasoning handling: after the last user query, final turn, empty reasoning
	[[user("q1"), asst("<think>r1</think>a1"), user("q2"), asst("<think>\n\nr2\n\n</think>\n\na2")], false],
	[[user("q1"), asst("<think>\nr1\n</think>\n\na1"), user("q2"), asst("a2 no think")], false],
	[[user("q"), asst("<think></think>\n\nmid"), asst("x<think>y</think>z</think>\n\nw")], false],
	[[user("q"), asst("pre<think>a<think>b\n</think>c"), asst("last")], true],
	[[sys("S"), user("q"), asst("\n\nplain\n"), sys("mid system"), user("<tool_response>\nr\n</tool_response>"),
		asst("<think>t</think>after tool")], false],
	// whitespace that Llama trims and ChatML keeps
	[[sys("  Sys\t\n"), user("\n u \n"), asst("\na \n")], true],
	[[sys(""), user(""), asst("")], true],
	[[user("ünïcødé ✓ 数学"), asst("<think>思考</think>答案")], false],
];

const out = [];
for (const [name, t] of Object.entries(templates)) {
	const template = new Template(t.tpl);
	for (const [messages, gen] of conversations) {
		const ctx = { messages, add_generation_prompt: gen, eos_token: t.eos };
		ctx.bos_token = t.bos === null ? "" : t.bos;
		const text = template.render(ctx);
		out.push({ template: name, tpl: t.tpl, bos: t.bos, eos: t.eos, gen, messages, text });
	}
}
fs.writeFileSync(outfile, JSON.stringify(out, null, 1));
console.log(`chat_golden.js: ${out.length} renderings written to ${outfile}`);
