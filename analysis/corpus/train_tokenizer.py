#!/usr/bin/env python3
"""Trains the byte-level BPE tokenizer of the BPE demo models (issue 17) on the train
split of make_text_corpus.py, then tokenizes the three splits to uint16 files.

Tokenizer (HF tokenizers, pinned in tests/requirements.txt), Llama-3 layout:
no normalizer; pre-tokenizer Sequence[Split(LLAMA3 regex, Isolated),
ByteLevel(add_prefix_space false, use_regex false)]; BPE with 16384 tokens
(256 byte symbols, merges, and <|endoftext|> = id 0), no unk, no byte fallback,
ignore_merges false; no post-processor (encode adds nothing); ByteLevel decoder.
<|endoftext|> is the document separator: every document of a split file is
preceded by it, so a split tokenizes to [0, doc1..., 0, doc2..., ...].

Writes TOKENIZER (tokenizer.json), OUT/{train,validation,test}.tok.u16 (little-
endian uint16 ids) and adds "tokenizer" and per-split "tokens"/"tokens_sha256" to
the corpus card. Needs the 2 cores for a few minutes on 300 MB.
Usage: train_tokenizer.py [--out build-corpus] [--card notebooks-data/corpus-bpe/corpus.json]
                          [--tokenizer notebooks-data/corpus-bpe/tokenizer.json]
"""

import argparse
import hashlib
import json
import os

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SEP = "<|endoftext|>"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB = 16384


def documents(path):
    text = open(path, encoding="utf-8").read()
    assert text.startswith(SEP)
    return text.split(SEP)[1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build-corpus")
    ap.add_argument("--card", default="notebooks-data/corpus-bpe/corpus.json")
    ap.add_argument("--tokenizer", default="notebooks-data/corpus-bpe/tokenizer.json")
    args = ap.parse_args()

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False, ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=[SEP], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    train_docs = documents(os.path.join(args.out, "train.txt"))
    tok.train_from_iterator(train_docs, trainer, length=len(train_docs))
    assert tok.get_vocab_size() == VOCAB and tok.token_to_id(SEP) == 0
    tok.save(args.tokenizer)

    card = json.load(open(args.card))
    card["tokenizer"] = {
        "file": os.path.basename(args.tokenizer), "sha256": hashlib.sha256(open(args.tokenizer, "rb").read()).hexdigest(),
        "script": "analysis/corpus/train_tokenizer.py", "trained_on": "train split only",
        "vocab_size": VOCAB, "special_tokens": {SEP: 0},
        "layout": "byte-level BPE, Llama-3 style: Split(LLAMA3 regex, Isolated) + ByteLevel(use_regex false); "
                  "no normalizer, no post-processor (nothing added by encode), ignore_merges false, min_frequency 2",
        "document_separator": f"{SEP} (id 0) precedes every document in the split files; it is split out of the "
                              "text as an added token, so encoding a split file gives the same ids as encoding "
                              "its documents one by one, each after id 0"}
    for name in ("train", "validation", "test"):
        docs = train_docs if name == "train" else documents(os.path.join(args.out, f"{name}.txt"))
        ids = []
        for enc in tok.encode_batch(docs, add_special_tokens=False):
            ids.append(0)
            ids.extend(enc.ids)
        arr = np.asarray(ids, dtype="<u2")
        path = os.path.join(args.out, f"{name}.tok.u16")
        arr.tofile(path)
        s = card["splits"][name]
        s["tokens"], s["tokens_file"] = len(arr), os.path.basename(path)
        s["tokens_sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
        s["text_bytes_per_token"] = round(s["text_bytes"] / len(arr), 4)
        print(name, len(docs), "documents", len(arr), "tokens", flush=True)
    with open(args.card, "w") as fh:
        json.dump(card, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
