#!/usr/bin/env bash
# Builds the byte-level demo corpus: the reStructuredText sources of the Python
# 3.11 documentation (Debian package python3.11-doc), split into train and
# validation BY DOCUMENT (every 20th document in sorted path order goes to
# validation). Writes notebooks-data/corpus/{train.bin,val.bin} (raw bytes,
# documents joined by one blank line) and corpus.json (package, version, counts,
# sha256). Usage: analysis/corpus/make_corpus.sh [OUT_DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/notebooks-data/corpus}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
if ! apt-get download python3.11-doc >/dev/null 2>&1; then
  apt-get update >/dev/null
  apt-get download python3.11-doc >/dev/null
fi
deb=$(ls python3.11-doc_*.deb)
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" x

python3 - "$tmp/x/usr/share/doc/python3.11/html/_sources" "$out" "$version" "$deb" <<'PY'
import hashlib, json, os, sys
src, out, version, deb = sys.argv[1:5]
docs = sorted(os.path.relpath(os.path.join(d, f), src)
              for d, _, fs in os.walk(src) for f in fs if f.endswith(".rst.txt"))
split = {"train": [], "validation": []}
for i, path in enumerate(docs):
    split["validation" if i % 20 == 19 else "train"].append(path)
facts = {"package": "python3.11-doc", "version": version, "deb": deb,
         "source_dir": "usr/share/doc/python3.11/html/_sources",
         "rule": "documents (*.rst.txt) sorted by path; index i % 20 == 19 -> validation, else train; "
                 "joined with b'\\n\\n'; raw bytes, one token per byte (vocab 256)",
         "splits": {}}
for name, file in (("train", "train.bin"), ("validation", "val.bin")):
    data = b"\n\n".join(open(os.path.join(src, p), "rb").read() for p in split[name])
    with open(os.path.join(out, file), "wb") as f:
        f.write(data)
    facts["splits"][name] = {"file": file, "documents": len(split[name]), "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()}
facts["splits"]["validation"]["document_list"] = split["validation"]
with open(os.path.join(out, "corpus.json"), "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "document_list"}
                  for k, v in facts["splits"].items()}))
PY
