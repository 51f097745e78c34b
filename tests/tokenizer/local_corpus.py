"""Text documents from this machine for training and checking tokenizers:
translation catalogues (/usr/share/locale/*/LC_MESSAGES/*.mo, ~200 languages),
Debian changelogs and plain-text documentation (/usr/share/doc). Nothing is
downloaded; what is found depends on the installed packages. Documents come in
a fixed (sorted) order, so a byte budget selects the same ones on one machine."""
import gettext
import glob
import gzip
import os


def _mo_documents():
    for path in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        texts = []
        for key, value in catalog.items():
            if key == "" or not isinstance(value, str):
                continue
            texts.append(value)
        if texts:
            yield "\n".join(texts)


def _doc_documents():
    paths = sorted(glob.glob("/usr/share/doc/*/changelog*.gz") + glob.glob("/usr/share/doc/*/*.txt")
                   + glob.glob("/usr/share/doc/*/README*"))
    for path in paths:
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rb") as f:
                    data = f.read()
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
            else:
                continue
        except Exception:
            continue
        yield data.decode("utf-8", errors="replace")


def documents(max_bytes, max_document_bytes=64 * 1024):
    """Interleaves catalogue and documentation documents (each cut to
    max_document_bytes at a line end) until max_bytes of UTF-8 are collected."""
    total = 0
    sources = [_mo_documents(), _doc_documents()]
    while sources and total < max_bytes:
        for source in list(sources):
            doc = next(source, None)
            if doc is None:
                sources.remove(source)
                continue
            if len(doc.encode("utf-8")) > max_document_bytes:
                cut = doc.encode("utf-8")[:max_document_bytes].decode("utf-8", errors="ignore")
                doc = cut[: cut.rfind("\n") + 1] or cut
            total += len(doc.encode("utf-8"))
            yield doc
            if total >= max_bytes:
                return
