#!/usr/bin/env python3
"""Checks that ropescope's C++ tokenizer encodes a split of the BPE corpus exactly as
HF tokenizers does (pinned in tests/requirements.txt) with the committed
tokenizer.json: `ropescope tokenize` on the whole split file against HF's encode
of the whole file and against the per-document ids of train_tokenizer.py
(<|endoftext|> = 0 before each document). Exits 1 on any difference.
Usage: check_bpe_tokenizer.py [ROPESCOPE=build/src/cli/ropescope] [TEXT=notebooks-data/corpus-bpe/test.txt]
       [TOKENIZER=notebooks-data/corpus-bpe/tokenizer.json]
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from tokenizers import Tokenizer

rs, text_path, tok_path = (sys.argv[1:] + [None] * 3)[:3]
rs = rs or "build/src/cli/ropescope"
text_path = text_path or "notebooks-data/corpus-bpe/test.txt"
tok_path = tok_path or "notebooks-data/corpus-bpe/tokenizer.json"

text = open(text_path, encoding="utf-8").read()
tok = Tokenizer.from_file(tok_path)
hf_whole = np.asarray(tok.encode(text).ids)
per_doc = [0]
for enc in tok.encode_batch(text.split("<|endoftext|>")[1:], add_special_tokens=False):
    per_doc += enc.ids + [0]
per_doc = np.asarray(per_doc[:-1])
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([rs, "tokenize", tok_path, "--text", text_path, "-o", os.path.join(tmp, "ids.npy"), "-q"],
                   check=True)
    cpp = np.load(os.path.join(tmp, "ids.npy")).astype(np.int64)

ok = True
for name, ids in (("HF encode of the whole file", hf_whole), ("HF per document", per_doc)):
    same = len(ids) == len(cpp) and bool((ids == cpp).all())
    first = next((i for i in range(min(len(ids), len(cpp))) if ids[i] != cpp[i]), min(len(ids), len(cpp)))
    print(f"ropescope vs {name}: {len(cpp)} vs {len(ids)} ids, "
          + ("identical" if same else f"FIRST DIFFERENCE at {first}"))
    ok &= same
print(f"{text_path}: {len(text.encode())} bytes, {len(cpp)} tokens")
sys.exit(0 if ok else 1)
