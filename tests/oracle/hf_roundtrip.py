"""hf_roundtrip.py WORK OUT - iapo against the real Hugging Face stack
(transformers, safetensors, tokenizers), both directions. CI cannot run it
(Debian has no transformers); run it by hand where transformers >= 5 is
installed (CPU, fp32; session 9 ran it with transformers 5.17, torch 2.11,
safetensors 0.8, tokenizers 0.23; /work/helpers/notes/hf9.md has the figures):

    sh tests/oracle/hf_prepare.sh WORK      # here: the iapo side (no torch needed)
    CUDA_VISIBLE_DEVICES= python3 tests/oracle/hf_roundtrip.py WORK OUT   # there

WORK, as hf_prepare.sh makes it (any part may be missing; it is skipped):
  WORK/a/NAME/         model directories written by iapo (iapo init, the
                       checkpoints of iapo sft / train, iapo_weights_save
                       sharded), with tokenizer files
  WORK/ameta/NAME.logits.bin   iapo's fp32 logits (B,T,V) for WORK/ids.txt
  WORK/ameta/NAME.greedy.txt   iapo's greedy continuation of each row of
                       ids.txt (fp32 weights, no end-of-sequence stop)
  WORK/ameta/NAME.ids.txt      ids for this model instead of WORK/ids.txt
  WORK/ameta/NAME.cli.json     [{system, prompt, text}]: what `iapo generate
                       --temperature 0 --max-tokens 24` printed
  WORK/ids.txt         "B T" then B*T token ids
  WORK/texts.hex       one hex(UTF-8) text per line
  WORK/tmeta/NAME.tsv  for the tokenizer of a/NAME or tok/NAME: per line of
                       texts.hex, iapo's ids TAB hex(iapo chat render of the
                       text as the user turn) TAB the same with system
                       "You are helpful." (the generation prompt added) TAB
                       two conversations with <think> turns (compare_chat)
  WORK/tok/NAME/       tokenizer.json + tokenizer_config.json (+ golden.tsv:
                       hex(text) TAB ids, from tests/oracle/tokenizer_golden.js)
Writes OUT/report.txt (also printed) and, unless HF_MAKE=0, OUT/hf_models.tar.gz: tiny random
Llama / Qwen2 / Qwen3 models made and saved by transformers (save_pretrained),
each with hf_case.json (ids, lengths, greedy tokens) and hf_logits.bin (the
fp32 logits (B,T,V) of the saved directory loaded back by transformers), for
the HF -> iapo direction (tests/test_hf_models.c).
"""
import copy
import json
import logging
import os
import sys
import tarfile
import traceback
import warnings

import torch

REPORT = []


def say(*a):
    line = " ".join(str(x) for x in a)
    print(line, flush=True)
    REPORT.append(line)


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append("%s: %s" % (record.levelname, record.getMessage()))


def captured(fn):
    """Runs fn() recording transformers' log records and Python warnings."""
    h = Capture()
    lg = logging.getLogger("transformers")
    lg.addHandler(h)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        try:
            r = fn()
        finally:
            lg.removeHandler(h)
    msgs = h.lines + ["warning %s: %s" % (w.category.__name__, w.message) for w in ws]
    return r, msgs


def read_ids(path):
    with open(path) as f:
        vals = [int(x) for x in f.read().split()]
    B, T = vals[0], vals[1]
    return torch.tensor(vals[2:], dtype=torch.long).view(B, T)


def hf_greedy_loop(model, row, n):
    """Greedy by repeated full forwards (no cache), with each step's margin."""
    ids = row.clone().view(1, -1)
    toks, margins = [], []
    with torch.no_grad():
        for _ in range(n):
            lg = model(input_ids=ids).logits[0, -1].double()
            top = torch.topk(lg, 2)
            toks.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
            ids = torch.cat([ids, top.indices[:1].view(1, 1)], dim=1)
    return toks, margins


def hf_generate(model, row, n):
    gc = copy.deepcopy(model.generation_config)
    gc.eos_token_id = None
    gc.max_new_tokens = n
    gc.min_new_tokens = None
    gc.do_sample = False
    if gc.pad_token_id is None:
        gc.pad_token_id = 0
    ids = row.view(1, -1)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc)
    return [int(x) for x in out[0, ids.shape[1]:]]


# --------------------------------------------------------- iapo -> HF
def check_iapo_dirs(work):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    adir = os.path.join(work, "a")
    if not os.path.isdir(adir):
        say("[a] no iapo model directories: skipped")
        return
    texts = read_texts(work)
    for name in sorted(os.listdir(adir)):
        d = os.path.join(adir, name)
        say("\n[a] iapo -> HF: %s (%s)" % (name, ", ".join(sorted(os.listdir(d)))))
        try:
            own = os.path.join(work, "ameta", name + ".ids.txt")
            ids = read_ids(own if os.path.exists(own) else os.path.join(work, "ids.txt"))
            cfg, msgs = captured(lambda: AutoConfig.from_pretrained(d))
            say("  AutoConfig: %s; messages: %s" % (type(cfg).__name__, msgs or "none"))
            (model, info), msgs = captured(
                lambda: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True))
            model.eval()
            say("  AutoModelForCausalLM: %s, attn %s, dtype %s" % (type(model).__name__,
                                                               getattr(model.config, "_attn_implementation", "?"),
                                                               next(model.parameters()).dtype))
            try:
                say("  loading info: %s" % {k: v for k, v in dict(info).items() if v})
            except Exception:  # noqa: BLE001
                say("  loading info: %r" % (info,))
            say("  load messages: %s" % (msgs or "none"))
            say("  tie_word_embeddings %s, lm_head shares embed: %s" % (
                model.config.tie_word_embeddings,
                model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()))
            gcfg, msgs = captured(lambda: GenerationConfig.from_pretrained(d))
            say("  generation_config: bos %s eos %s pad %s; messages: %s" % (gcfg.bos_token_id, gcfg.eos_token_id,
                                                                            gcfg.pad_token_id, msgs or "none"))
            B, T = ids.shape
            with torch.no_grad():
                hf = model(input_ids=ids).logits.float()
            V = hf.shape[-1]
            ours = torch.frombuffer(bytearray(open(os.path.join(work, "ameta", name + ".logits.bin"), "rb").read()),
                                    dtype=torch.float32).view(B, T, V)
            diff = (hf - ours).abs().max().item()
            scale = hf.abs().max().item()
            agree = (hf.argmax(-1) == ours.argmax(-1)).float().mean().item()
            say("  logits (%d,%d,%d): max|hf-iapo| %.3g, max|hf| %.3g, relative %.3g, argmax agreement %.3f" %
                (B, T, V, diff, scale, diff / scale, agree))
            ours_greedy = [[int(x) for x in l.split()] for l in
                           open(os.path.join(work, "ameta", name + ".greedy.txt")).read().strip().split("\n")]
            for b in range(B):
                n = len(ours_greedy[b])
                loop, margins = hf_greedy_loop(model, ids[b], n)
                try:
                    (gen, msgs) = captured(lambda: hf_generate(model, ids[b], n))
                except Exception as e:  # noqa: BLE001
                    gen, msgs = None, ["generate failed: %r" % e]
                say("  greedy row %d: iapo %s | HF loop %s | HF generate %s | same %s/%s | min margin %.3g%s" % (
                    b, ours_greedy[b], loop, gen, ours_greedy[b] == loop, ours_greedy[b] == gen, min(margins),
                    ("; generate messages: %s" % msgs) if msgs else ""))
            if os.path.exists(os.path.join(d, "tokenizer.json")):
                check_auto_tokenizer(d, name, work, texts)
                check_cli_generate(model, d, name, work)
        except Exception:  # noqa: BLE001
            say("  FAILED:\n" + traceback.format_exc())


def read_texts(work):
    p = os.path.join(work, "texts.hex")
    if not os.path.exists(p):
        return []
    return [bytes.fromhex(l.strip()).decode("utf-8") for l in open(p).read().split("\n")[:-1]]


def tok_meta(work, name):
    """iapo's ids and chat renders for texts.hex, from tmeta/<name>.tsv; for
    a/<name> dirs that share a tokenizer, the first listed file that exists."""
    p = os.path.join(work, "tmeta", name + ".tsv")
    if not os.path.exists(p):
        return None
    rows = []
    for line in open(p, encoding="utf-8").read().split("\n")[:-1]:
        f = line.split("\t")
        rows.append([[int(x) for x in f[0].split()]] + [bytes.fromhex(x).decode("utf-8") for x in f[1:]])
    return rows


def check_auto_tokenizer(d, name, work, texts):
    from transformers import AutoTokenizer
    tok, msgs = captured(lambda: AutoTokenizer.from_pretrained(d))
    say("  AutoTokenizer: %s, len %d, eos %r, bos %r, pad %r; messages: %s" % (
        type(tok).__name__, len(tok), tok.eos_token, tok.bos_token, tok.pad_token, msgs or "none"))
    meta = tok_meta(work, name)
    if meta is None:
        say("  (no tmeta/%s.tsv: ids not compared)" % name)
        return
    compare_tok(lambda t: tok.encode(t, add_special_tokens=False), texts, meta, "AutoTokenizer.encode")
    compare_chat(tok, texts, meta)
    # decode of our ids gives the text back?
    bad = sum(1 for t, m in zip(texts, meta) if tok.decode(m[0]) != t)
    say("  AutoTokenizer.decode(iapo ids) != text on %d of %d texts" % (bad, len(texts)))


def check_cli_generate(model, d, name, work):
    """`iapo generate --system S --prompt P --temperature 0` (bf16 weights,
    its default) against transformers' greedy generate on the chat template
    (fp32), stopping at generation_config's eos ids, decoded without special
    tokens."""
    p = os.path.join(work, "ameta", name + ".cli.json")
    if not os.path.exists(p):
        return
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(d)
    same = 0
    rows = json.load(open(p))
    for r in rows:
        msgs = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["prompt"]}]
        ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_tensors="pt")
        if not torch.is_tensor(ids):
            ids = ids["input_ids"]
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        if text == r["text"]:
            same += 1
        else:
            say("    iapo generate %r vs HF %r" % (r["text"][:80], text[:80]))
    say("  iapo generate (CLI, greedy, chat template) text == HF generate + decode: %d of %d" % (same, len(rows)))


def compare_tok(enc, texts, meta, what):
    bad = []
    for i, (t, m) in enumerate(zip(texts, meta)):
        ids = enc(t)
        if list(ids) != m[0]:
            bad.append((i, t[:60], ids[:20], m[0][:20]))
    say("  %s: %d of %d texts differ from iapo's ids" % (what, len(bad), len(texts)))
    for b in bad[:8]:
        say("    text %d %r: HF %s iapo %s" % b)


def compare_chat(tok, texts, meta):
    """Columns of tmeta: 1 user turn; 2 system + user; 3 user, assistant
    with <think>, user (all with the generation prompt); 4 system, user,
    final assistant with <think> (no generation prompt)."""
    bad = 0
    first = None
    n = 0
    think = "<think>\nsome reasoning\n</think>\n\nThe answer is 4."
    for t, m in zip(texts, meta):
        if "\x00" in t:
            continue  # iapo's chat API takes C strings: a NUL ends the text
        convs = [([{"role": "user", "content": t}], True),
                 ([{"role": "system", "content": "You are helpful."}, {"role": "user", "content": t}], True),
                 ([{"role": "user", "content": t}, {"role": "assistant", "content": think},
                   {"role": "user", "content": "And then?"}], True),
                 ([{"role": "system", "content": "S."}, {"role": "user", "content": t},
                   {"role": "assistant", "content": "<think>\nr\n</think>\n\nans"}], False)]
        for (msgs, gen), ours in zip(convs, m[1:]):
            n += 1
            try:
                r = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            except Exception as e:  # noqa: BLE001
                r = "EXC %r" % e
            if r != ours:
                bad += 1
                if first is None:
                    first = (len(msgs), t[:40], r[:300], ours[:300])
    say("  apply_chat_template vs iapo's render: %d of %d differ%s" % (bad, n,
                                                                      (" first: %r" % (first,)) if first else ""))


# ----------------------------------------------------------- tokenizers
def check_tokenizers(work):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    tdir = os.path.join(work, "tok")
    if not os.path.isdir(tdir):
        say("[t] no tokenizer dirs: skipped")
        return
    texts = read_texts(work)
    for name in sorted(os.listdir(tdir)):
        d = os.path.join(tdir, name)
        say("\n[t] tokenizers %s" % name)
        try:
            tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            g = os.path.join(d, "golden.tsv")
            if os.path.exists(g):
                n = bad = 0
                ex = []
                for line in open(g, encoding="utf-8").read().split("\n"):
                    if not line:
                        continue
                    f = line.split("\t")
                    text = bytes.fromhex(f[0]).decode("utf-8")
                    want = [int(x) for x in f[1].split()]
                    got = tk.encode(text, add_special_tokens=False).ids
                    n += 1
                    if got != want:
                        bad += 1
                        if len(ex) < 5:
                            ex.append((text[:50], got[:16], want[:16]))
                say("  golden corpus (npm oracle ids, which iapo's tests match): HF tokenizers differs on %d of %d" %
                    (bad, n))
                for e in ex:
                    say("    %r: HF %s golden %s" % e)
            meta = tok_meta(work, name)
            if meta:
                compare_tok(lambda t: tk.encode(t, add_special_tokens=False).ids, texts, meta,
                            "tokenizers.encode (GSM8K + edge texts)")
                at, msgs = captured(lambda: AutoTokenizer.from_pretrained(d))
                say("  AutoTokenizer %s messages: %s" % (type(at).__name__, msgs or "none"))
                compare_chat(at, texts, meta)
        except Exception:  # noqa: BLE001
            say("  FAILED:\n" + traceback.format_exc())


# --------------------------------------------------------- HF -> iapo
def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def make_hf_models(out):
    import transformers
    from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                              Qwen3Config, Qwen3ForCausalLM)
    root = os.path.join(out, "hf_models")
    os.makedirs(root, exist_ok=True)
    V, C, F = 64, 32, 32
    common = dict(vocab_size=V, hidden_size=C, intermediate_size=F, num_hidden_layers=2, max_position_embeddings=128,
                  bos_token_id=1, eos_token_id=2)
    cases = [
        ("llama_gqa_untied_f32", LlamaConfig, LlamaForCausalLM,
         dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-5,
              rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
         torch.float32, None),
        ("llama_mha_tied_bf16", LlamaConfig, LlamaForCausalLM,
         dict(num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True), torch.bfloat16, None),
        ("qwen2_gqa_tied_f32", Qwen2Config, Qwen2ForCausalLM,
         dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True, rope_theta=1000000.0),
         torch.float32, None),
        ("qwen3_gqa_untied_bf16", Qwen3Config, Qwen3ForCausalLM,
         dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False), torch.bfloat16,
         None),
        ("qwen3_tied_f16_sharded", Qwen3Config, Qwen3ForCausalLM,
         dict(num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=True), torch.float16,
         "20KB"),
    ]
    g = torch.Generator().manual_seed(7)
    B, T = 2, 8
    ids = torch.randint(0, V, (B, T), generator=g)
    lens = [T, 5]
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, lens[1]:] = 0
    for i, (name, cc, mc, kw, dtype, shard) in enumerate(cases):
        d = os.path.join(root, name)
        say("\n[b] HF -> iapo: %s" % name)
        try:
            kwargs = dict(common)
            kwargs.update(kw)
            cfg, msgs = captured(lambda: cc(**kwargs))
            if msgs:
                say("  config messages: %s" % msgs)
            torch.manual_seed(100 + i)
            model = mc(cfg)
            randomize(model, 100 + i)
            model = model.to(dtype)
            sp = {"max_shard_size": shard} if shard else {}
            _, msgs = captured(lambda: model.save_pretrained(d, **sp))
            say("  saved: %s; messages: %s" % (sorted(os.listdir(d)), msgs or "none"))
            # The reference: the saved directory loaded back in fp32, which is what iapo does.
            m2 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            with torch.no_grad():
                lg = m2(input_ids=ids, attention_mask=mask).logits.float()
            for b in range(B):
                lg[b, lens[b]:] = 0
            greedy, margins = hf_greedy_loop(m2, ids[0], 6)
            with open(os.path.join(d, "hf_logits.bin"), "wb") as f:
                f.write(lg.contiguous().numpy().tobytes())
            case = {"transformers": transformers.__version__, "torch": torch.__version__, "B": B, "T": T, "V": V,
                    "lens": lens, "tokens": ids.flatten().tolist(), "greedy": greedy,
                    "greedy_min_margin": min(margins), "saved_dtype": str(dtype).replace("torch.", "")}
            with open(os.path.join(d, "hf_case.json"), "w") as f:
                json.dump(case, f)
            say("  config.json: %s" % json.dumps(json.load(open(os.path.join(d, "config.json"))), sort_keys=True))
            say("  logits max|.| %.3g, greedy row 0 %s (min margin %.3g)" % (lg.abs().max().item(), greedy,
                                                                           min(margins)))
        except Exception:  # noqa: BLE001
            say("  FAILED:\n" + traceback.format_exc())
    with tarfile.open(os.path.join(out, "hf_models.tar.gz"), "w:gz") as t:
        t.add(root, arcname="hf_models")


def main():
    work, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    import safetensors
    import tokenizers
    import transformers
    say("versions: transformers %s torch %s safetensors %s tokenizers %s python %s" % (
        transformers.__version__, torch.__version__, safetensors.__version__, tokenizers.__version__,
        sys.version.split()[0]))
    parts = [lambda: check_iapo_dirs(work), lambda: check_tokenizers(work)]
    if os.environ.get("HF_MAKE", "1") != "0":
        parts.insert(0, lambda: make_hf_models(out))
    for part in parts:
        try:
            part()
        except Exception:  # noqa: BLE001
            say("PART FAILED:\n" + traceback.format_exc())
        with open(os.path.join(out, "report.txt"), "w") as f:
            f.write("\n".join(REPORT) + "\n")


if __name__ == "__main__":
    main()
