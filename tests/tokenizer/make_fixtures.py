"""Writes the tokenizer fixtures of tests/data/tokenizers/: small BPE tokenizers
trained here (tokenizers==0.23.3, seconds each) in the tokenizer.json shape of
each supported model family, the test texts (edge cases and seeded fuzz
strings), and the ids HF tokenizers gives for each text, with and without
special tokens. The C++ tests compare against these committed ids; rerun after
changing a shape:  build/test-venv/bin/python3 tests/tokenizer/make_fixtures.py
"""
import json
import os
import random
import sys
import unicodedata

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(__file__))
import local_corpus  # noqa: E402
from texts import edge_cases, fuzz_texts  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "tokenizers")
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
VOCAB = 1200
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]

CORPUS = list(local_corpus.documents(3_000_000, max_document_bytes=16 * 1024))


def train(tokenizer, special_tokens=(), **trainer_args):
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False, special_tokens=list(special_tokens),
                                  **trainer_args)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return json.loads(tokenizer.to_str())


def byte_level_trained(pre_tokenizer, normalizer=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        tok.normalizer = normalizer
    return train(tok, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def spm_trained(pre_tokenizer, byte_tokens=BYTE_TOKENS, specials=("<unk>", "<s>", "</s>")):
    """A SentencePiece-style vocabulary (▁ for spaces, <0xHH> byte tokens at ids 3..258)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    d = train(tok, special_tokens=list(specials) + list(byte_tokens), limit_alphabet=150)
    d["added_tokens"] = [a for a in d["added_tokens"] if a["content"] not in BYTE_TOKENS]
    return d


def add_tokens(d, entries):
    """Appends added tokens (content, flags) with the ids HF will give them."""
    next_id = max(list(d["model"]["vocab"].values()) + [a["id"] for a in d["added_tokens"]]) + 1
    for content, flags in entries:
        in_vocab = d["model"]["vocab"].get(content)  # HF then gives the vocabulary's id
        entry = {"id": next_id if in_vocab is None else in_vocab, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
        entry.update(flags)
        d["added_tokens"].append(entry)
        next_id += in_vocab is None
    return d


def template(bos):
    return {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                     {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [d_id_of(bos)], "tokens": [bos]}}}


_current = {}


def d_id_of(content):
    for a in _current["d"]["added_tokens"]:
        if a["content"] == content:
            return a["id"]
    return _current["d"]["model"]["vocab"][content]


def legacy_merges(d):
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    return d


def byte_level(text):
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    mapping = dict(zip(bs, map(chr, cs)))
    return "".join(mapping[b] for b in text.encode("utf-8"))


def llama3_like():
    d = byte_level_trained(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    # Whole words in the vocabulary that merges cannot reach: ignore_merges picks them.
    vocab = d["model"]["vocab"]
    for word in [" the", " information", " Übersetzung", " перевод", " 翻译", "ing", " 2024", "\n\n"]:
        key = byte_level(word)
        if key not in vocab:
            vocab[key] = len(vocab)
    d["model"]["ignore_merges"] = True
    _current["d"] = d
    add_tokens(d, [("<|begin_of_text|>", {}), ("<|end_of_text|>", {}), ("<|start_header_id|>", {}),
                   ("<|end_header_id|>", {}), ("<|eot_id|>", {})])
    d["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        template("<|begin_of_text|>")]}
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return d


def qwen2_like():
    d = byte_level_trained(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), normalizers.NFC())
    d["model"]["continuing_subword_prefix"] = ""
    d["model"]["end_of_word_suffix"] = ""
    _current["d"] = d
    add_tokens(d, [("<|endoftext|>", {}), ("<|im_start|>", {}), ("<|im_end|>", {}),
                   ("<tool_call>", {"special": False}), ("</tool_call>", {"special": False}),
                   ("<|fim_prefix|>", {"special": False}), ("<think>", {"special": False}),
                   ("</think>", {"special": False})])
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return d


def olmo2_like():
    d = byte_level_trained(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), "removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    _current["d"] = d
    add_tokens(d, [("<|endoftext|>", {}), ("<|fim_prefix|>", {}), ("<|pad|>", {})])
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return d


def neox_like():
    d = byte_level_trained(pre_tokenizers.ByteLevel(add_prefix_space=False), normalizers.NFC())
    del d["pre_tokenizer"]["use_regex"]  # as in GPT-NeoX's file: absent means true
    _current["d"] = d
    add_tokens(d, [("<|endoftext|>", {}), ("<|padding|>", {})])
    add_tokens(d, [(" " * n, {"special": False, "normalized": True}) for n in (2, 4, 8)])
    add_tokens(d, [("\t\t", {"special": False, "normalized": True})])
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return legacy_merges(d)


def starcoder2_like():
    d = byte_level_trained(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    _current["d"] = d
    add_tokens(d, [("<|endoftext|>", {}), ("<fim_prefix>", {}), ("<fim_middle>", {}), ("<file_sep>", {})])
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return d


def llama2_decoder(strip=True):
    steps = [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
             {"type": "Fuse"}]
    if strip:
        steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {"type": "Sequence", "decoders": steps}


def llama2_like():
    d = spm_trained(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True))
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    d["pre_tokenizer"] = None
    d["model"].update(unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    _current["d"] = d
    d["post_processor"] = template("<s>")
    d["decoder"] = llama2_decoder()
    return legacy_merges(d)


def phi3_like():
    d = llama2_like()
    add_tokens(d, [("<|endoftext|>", {}), ("<|assistant|>", {"rstrip": True}), ("<|end|>", {"rstrip": True}),
                   ("<|user|>", {"rstrip": True}), ("<|lsp|>", {"lstrip": True}),
                   ("word", {"single_word": True, "special": False}),
                   ("</s>x", {"normalized": True, "special": False}),
                   ("▁Hello", {"normalized": True, "special": False, "single_word": True})])
    return d


def mistral_v03_like():
    d = spm_trained(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True))
    d["normalizer"] = None
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    d["model"].update(unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    _current["d"] = d
    add_tokens(d, [("[INST]", {}), ("[/INST]", {}), ("[TOOL_CALLS]", {}), ("[REFERENCE_DOC_1]", {"special": False})])
    d["post_processor"] = template("<s>")
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    return d


def metaspace_always_like():
    # Older Llama-2-era files: Metaspace with the legacy add_prefix_space key, split true.
    d = spm_trained(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True))
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    d["model"].update(unk_token="<unk>", fuse_unk=False, byte_fallback=True)
    _current["d"] = d
    d["post_processor"] = template("<s>")
    d["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    return d


def gemma_like():
    # No byte tokens for 0xF0-0xF4: 4-byte characters (emoji, new CJK) become <unk> (fused).
    bytes_kept = [t for t in BYTE_TOKENS if t not in ("<0xF0>", "<0xF1>", "<0xF2>", "<0xF3>", "<0xF4>")]
    d = spm_trained(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True), bytes_kept,
                    specials=("<pad>", "<eos>", "<bos>", "<unk>"))
    d["added_tokens"] = [a for a in d["added_tokens"] if a["content"] not in bytes_kept]
    d["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    d["pre_tokenizer"] = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
    d["model"].update(unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    _current["d"] = d
    add_tokens(d, [("<start_of_turn>", {}), ("<end_of_turn>", {}), ("\n", {"special": False})])
    d["post_processor"] = template("<bos>")
    d["decoder"] = llama2_decoder(strip=False)
    return d


def affixes_like():
    # Subword prefix / end-of-word suffix, unk without byte fallback, Split with
    # the remaining behaviours, Replace with a regex.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\d+"), "0")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s+"), "removed", invert=False),
        pre_tokenizers.Split(Regex(r"[[:punct:]]"), "merged_with_previous", invert=False),
        pre_tokenizers.Split(Regex(r"[A-Z]"), "merged_with_next", invert=False),
        pre_tokenizers.Split(Regex(r"\p{Han}"), "contiguous", invert=False)])
    d = train(tok, special_tokens=["[UNK]"], continuing_subword_prefix="##", end_of_word_suffix="</w>",
              limit_alphabet=120)
    d["model"].update(unk_token="[UNK]", fuse_unk=False)
    _current["d"] = d
    d["decoder"] = None
    return d


SHAPES = {
    "llama3_like": llama3_like, "qwen2_like": qwen2_like, "olmo2_like": olmo2_like, "neox_like": neox_like,
    "starcoder2_like": starcoder2_like, "llama2_like": llama2_like, "phi3_like": phi3_like,
    "mistral_v03_like": mistral_v03_like, "metaspace_always_like": metaspace_always_like,
    "gemma_like": gemma_like, "affixes_like": affixes_like,
}


def newer_than_unicode_14(text):
    """Code points of `text` unassigned in Unicode 14.0 (Debian 12's Oniguruma and
    utf8proc tables are 14 / 15; HF tokenizers 0.23.3 uses Unicode 16), as U+XXXX."""
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cn"})


def main():
    assert unicodedata.unidata_version == "14.0.0", "run with Python 3.11 (Unicode 14.0 tables)"
    os.makedirs(OUT, exist_ok=True)
    cases = edge_cases()
    texts = cases + fuzz_texts(random.Random(20261129), 400)
    with open(os.path.join(OUT, "texts.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=True) + "\n")
    for name, build in SHAPES.items():
        d = build()
        text = json.dumps(d, ensure_ascii=False, indent=None)
        tok = Tokenizer.from_str(text)  # HF must accept it as written
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        with open(os.path.join(OUT, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(OUT, name, "expected.jsonl"), "w") as f:
            for i, t in enumerate(texts):
                line = {"ids": tok.encode(t).ids}
                newer = newer_than_unicode_14(t)
                if newer:
                    line["unicode_newer_than_14"] = newer
                if i < len(cases):
                    line["ids_no_special"] = tok.encode(t, add_special_tokens=False).ids
                    line["decoded"] = tok.decode(line["ids"], skip_special_tokens=False)
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
        print(name, len(text), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
