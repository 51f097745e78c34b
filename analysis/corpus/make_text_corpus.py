#!/usr/bin/env python3
"""Builds the English text corpus of the BPE demo models (issue 17) from Debian 12
documentation packages (section main only, so DFSG-free and redistributable).

Each package is fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
Documents are the files that hold prose: HTML pages (tags stripped with
html.parser, navigation/sidebars/scripts dropped), man pages of usr/share/man/man*
(rendered by `man -l`, 80 columns), info manuals, POD (`pod2text`) and plain text
(.txt .rst .md, README/NEWS/changelog files); folders named like a locale other
than en-US/en-GB (de-DE, pt_BR: translations, often falling back to English) are
skipped. A document is kept if it has at
least MIN_BYTES, at most 2% non-ASCII characters and English stop words in at
least 3% of its words; exact duplicates (same text) are kept once (first in
package, path order). Each package contributes at most --cap bytes (documents in
path order until the cap is reached).

Split by document, on sha256("package/path"): the first 8 hex digits as an
integer modulo 10000 below 60 -> test, below 120 -> validation, else train.
Split files hold every document preceded by the literal special token
<|endoftext|> (so HF tokenizers and ropescope tokenize a split file into the
same ids as the documents one by one, each after the separator id), documents
in the order of sha256("package/path"), so that any prefix of a split is a
random sample of its documents.

Writes OUT/{train,validation,test}.txt, OUT/debs/, OUT/extract/ (per-package
cache) and the corpus card (packages with version, licence, bytes, sha256 of the
.deb; the rule; per-split documents, bytes, sha256). Re-running reuses the
cache and gives the same files (everything is sorted).
Usage: make_text_corpus.py [--out build-corpus] [--card notebooks-data/corpus-bpe/corpus.json]
"""

import argparse
import glob
import gzip
import hashlib
import html.parser
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor

PACKAGES = sorted("""
abs-guide apache2-doc bash-doc bind9-doc cmake-doc libboost1.74-doc debian-handbook debian-policy
debian-reference-en developers-reference erlang-doc exim4-doc-html freebsd-manpages git-doc
glibc-doc gnuplot-doc kicad-doc-en libglib2.0-doc libgtk-4-doc libssl-doc libstdc++-12-doc
linux-doc-6.1 llvm-15-doc manpages manpages-dev maxima-doc mercurial-common nodejs-doc octave-doc
openjdk-17-doc pari-doc perl-doc postfix-doc postgresql-doc-15 python-django-doc python-flask-doc
python-pandas-doc python-scipy-doc python-sqlalchemy-doc python-werkzeug-doc python3.11-doc
qtbase5-doc-html r-doc-html ruby3.1-doc sphinx-doc tcl8.6-doc tk8.6-doc vim-runtime xorg-docs
zsh-doc
""".split())
SEP = "<|endoftext|>"
MIN_BYTES = 500
STOP = {"the", "of", "and", "to", "is", "in", "a", "that", "for", "it", "be", "this", "are", "with", "as", "or"}
SPLIT_RULE = ("sha256('package/path') of each document; int(first 8 hex digits) % 10000: < 60 -> test, "
              "< 120 -> validation, else train; within a split, documents in sha256 order")
PLAIN = re.compile(r"(\.(txt|rst|md|text)(\.gz)?|/(README|NEWS|changelog|CHANGES|FAQ)[^/]*)$", re.I)
MAN = re.compile(r"^usr/share/man/man[0-9n][^/]*/[^/]+$")
LOCALE_DIR = re.compile(r"/(?!en[-_](US|GB)/)[a-z]{2,3}[-_][A-Z]{2}/")  # translations (often partly English)
SKIP_CLASS = {"sphinxsidebar", "related", "footer", "header", "navbar", "nav", "sidebar", "breadcrumb",
              "breadcrumbs", "navigation", "navheader", "navfooter", "toc", "headerlink", "search"}
BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt", "dd", "table",
         "section", "blockquote", "hr", "ul", "ol", "dl", "title", "article", "td", "th"}


class HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML page: block tags become line breaks, whitespace outside
    <pre> collapses, script/style/head and navigation elements are dropped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip_tag, self.skip_depth, self.pre = [], None, 0, 0

    def handle_starttag(self, tag, attrs):
        if self.skip_tag:
            self.skip_depth += tag == self.skip_tag
            return
        classes = set((dict(attrs).get("class") or "").split()) | {dict(attrs).get("role") or ""}
        if tag in ("script", "style", "head", "nav", "header", "footer") or classes & SKIP_CLASS:
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "pre":
            self.pre += 1
        if tag in BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if self.skip_tag:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip_tag:
            self.out.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self):
        lines = (line.rstrip() for line in "".join(self.out).split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in lines)).strip() + "\n"


def html_text(raw):
    p = HtmlText()
    p.feed(raw.decode("utf-8", errors="replace"))
    p.close()
    return p.text()


def info_text(raw):
    text = raw.decode("utf-8", errors="replace").split("\x1f\nTag Table:")[0]
    return re.sub(r"\x1f\n(File: [^\n]*\n)?", "\n", text)


def run(cmd, data=None):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_FORMATTING="")
    r = subprocess.run(cmd, input=data, capture_output=True, env=env, timeout=120)
    return r.stdout.decode("utf-8", errors="replace") if r.returncode == 0 else ""


def document(root, rel):
    """Plain text of one file of an unpacked package, or None when it is no document."""
    path = os.path.join(root, rel)
    if re.search(r"/_(sources|static|images)/", "/" + rel) or LOCALE_DIR.search("/" + rel) or os.path.islink(path) or not os.path.isfile(path):
        return None
    if MAN.match(rel):
        raw = open(path, "rb").read()
        head = gzip.decompress(raw)[:200] if rel.endswith(".gz") else raw[:200]
        return None if head.startswith(b".so ") else run(["man", "-l", path])
    raw = open(path, "rb").read()
    if rel.endswith(".gz"):
        raw = gzip.decompress(raw)
    if re.search(r"\.x?html?(\.gz)?$", rel):
        return html_text(raw)
    if re.search(r"/usr/share/info/|\.info(-\d+)?(\.gz)?$", "/" + rel):
        return info_text(raw)
    if re.search(r"\.pod(\.gz)?$", rel):
        return run(["pod2text", "-w", "80"], raw)
    if PLAIN.search("/" + rel) and "changelog.Debian" not in rel:
        return raw.decode("utf-8", errors="replace")
    return None


def english(text):
    if len(text.encode()) < MIN_BYTES or sum(ord(c) > 127 for c in text) > 0.02 * len(text):
        return False
    words = re.findall(r"[a-z]+", text.lower())
    return len(words) > 50 and sum(w in STOP for w in words) >= 0.03 * len(words)


def licence(root, pkg, debs):
    """First License: line of at most 8 words in the package's copyright file, else the licences its
    text names.
    Where usr/share/doc/PKG is a symlink to another package's folder, that package's copyright."""
    doc = os.path.join(root, "usr/share/doc", pkg)
    if os.path.islink(doc):
        other = os.path.basename(os.readlink(doc))
        d = os.path.join(debs, "copyright-only")
        os.makedirs(d, exist_ok=True)
        if not glob.glob(os.path.join(d, f"{other}_*.deb")):
            subprocess.run(["apt-get", "download", other], cwd=d, check=True, capture_output=True)
        subprocess.run(["dpkg-deb", "-x", sorted(glob.glob(os.path.join(d, f"{other}_*.deb")))[-1], root], check=True)
        pkg = other
    files = [os.path.join(root, "usr/share/doc", pkg, "copyright")] + sorted(
        glob.glob(os.path.join(root, "usr/share/doc/*/copyright")))
    for f in files:
        if os.path.isfile(f):
            text = open(f, encoding="utf-8", errors="replace").read()
            short = [v.strip() for v in re.findall(r"^License:[ \t]*(\S.*)$", text, re.M) if len(v.split()) <= 8]
            if short:
                return short[0], os.path.relpath(f, root)
            names = re.findall(r"\b(GPL|LGPL|GFDL|BSD|MIT|Apache|Artistic|PSF|Python Software Foundation|"
                               r"public domain|Creative Commons|CC-BY[-A-Z0-9.]*|Expat|X11|OpenSSL|PostgreSQL|"
                               r"Vim)\b", text, re.I)
            named = ", ".join(sorted(set(names))) or "none (a permissive notice)"
            return "free-form; licences named: " + named, os.path.relpath(f, root)
    return "no copyright file in the .deb", None


def write_documents(root, cache, cap):
    """The documents of an unpacked package, in path order up to cap bytes, as JSON lines."""
    rels = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    total, docs = 0, []
    for rel in rels:
        if total >= cap:
            break
        try:
            text = document(root, rel)
        except (OSError, ValueError, EOFError, subprocess.TimeoutExpired):
            text = None
        if text:
            text = text.replace(SEP, "").replace("\r\n", "\n").strip() + "\n"
        if text and english(text):
            docs.append({"path": rel, "text": text})
            total += len(text.encode())
    with gzip.open(cache + ".tmp", "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    os.replace(cache + ".tmp", cache)


def extract(pkg, out, cap):
    """Downloads and unpacks one package (documents cached in OUT/extract); returns its facts."""
    debs = os.path.join(out, "debs")
    found = sorted(glob.glob(os.path.join(debs, f"{pkg}_*.deb")))
    if not found:
        subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True)
        found = sorted(glob.glob(os.path.join(debs, f"{pkg}_*.deb")))
    deb = found[-1]
    field = lambda name: subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True).stdout.strip()
    sha = hashlib.sha256(open(deb, "rb").read()).hexdigest()
    cache = os.path.join(out, "extract", f"{pkg}_{sha[:16]}.jsonl.gz")
    facts = {"package": pkg, "version": field("Version"), "section": field("Section"),
             "deb": os.path.basename(deb), "deb_sha256": sha}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        if not os.path.exists(cache):
            write_documents(tmp, cache, cap)
        facts["license"], facts["license_file"] = licence(tmp, pkg, debs)
    facts["cache"] = os.path.basename(cache)
    return facts


def bucket(doc_id):
    h = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) % 10000
    return "test" if h < 60 else "validation" if h < 120 else "train"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build-corpus")
    ap.add_argument("--card", default="notebooks-data/corpus-bpe/corpus.json")
    ap.add_argument("--cap", type=int, default=30_000_000, help="most bytes of text per package")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    for d in ("debs", "extract"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        facts = list(pool.map(extract, PACKAGES, [args.out] * len(PACKAGES), [args.cap] * len(PACKAGES)))

    seen, splits = set(), {s: [] for s in ("train", "validation", "test")}
    for f in facts:
        f["documents"], f["bytes"], f["duplicates_dropped"] = 0, 0, 0
        with gzip.open(os.path.join(args.out, "extract", f["cache"]), "rt", encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                key = hashlib.sha256(d["text"].encode()).digest()
                if key in seen:
                    f["duplicates_dropped"] += 1
                    continue
                seen.add(key)
                doc_id = f"{f['package']}/{d['path']}"
                splits[bucket(doc_id)].append((doc_id, d["text"]))
                f["documents"] += 1
                f["bytes"] += len(d["text"].encode())
        del f["cache"]

    card = {"purpose": "text corpus of the BPE demo models (issue 17)",
            "script": "analysis/corpus/make_text_corpus.py", "source": "Debian 12 (bookworm) main, apt-get download",
            "document_filter": f">= {MIN_BYTES} bytes, <= 2% non-ASCII characters, >= 3% English stop words, "
                               f"no translation folders; exact duplicates kept once; at most {args.cap} bytes "
                               "per package",
            "separator": f"every document is preceded by the special token {SEP} in the split files",
            "split_rule": SPLIT_RULE, "splits": {}, "packages": facts}
    for name, docs in splits.items():
        docs.sort(key=lambda d: hashlib.sha256(d[0].encode()).digest())  # any prefix is a random sample
        data = "".join(SEP + text for _, text in docs).encode()
        with open(os.path.join(args.out, f"{name}.txt"), "wb") as fh:
            fh.write(data)
        card["splits"][name] = {"file": f"{name}.txt", "documents": len(docs), "bytes": len(data),
                                "text_bytes": len(data) - len(docs) * len(SEP),
                                "sha256": hashlib.sha256(data).hexdigest()}
    card["total_bytes"] = sum(s["bytes"] for s in card["splits"].values())
    os.makedirs(os.path.dirname(args.card), exist_ok=True)
    with open(args.card, "w") as fh:
        json.dump(card, fh, indent=1)
        fh.write("\n")
    print(json.dumps({k: v for k, v in card["splits"].items()}, indent=1), card["total_bytes"])


if __name__ == "__main__":
    main()
