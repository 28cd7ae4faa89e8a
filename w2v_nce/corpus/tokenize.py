"""Streaming whitespace tokenizer: any size, any script, no assumption that lines are short.

The corpus is read in fixed-size byte blocks (never line by line: text8 is one 100 MB line), decoded
with an incremental UTF-8 decoder so that a character split across two blocks is handled, and split on
whitespace. A token cut by the block boundary is carried into the next block. Line breaks are kept as
a `None` marker so that training windows never span two lines (documents / sentences).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
from pathlib import Path
from typing import BinaryIO, Iterator

from tqdm import tqdm

from ..errors import W2VError

BLOCK_BYTES = 1 << 20
MAX_TOKEN_CHARS = 1 << 16  # a "word" this long means the file is not text
LINE_BREAK = None  # marker yielded between lines
ASCII_SPACE = b" \t\x0b\x0c\r\x1c\x1d\x1e\x1f"  # with b"\n": what str.split() splits ASCII text at
# the other characters str.split() splits at (str.isspace()), which the compiled scan, reading bytes, does not see
UNICODE_SPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open a corpus for reading bytes, decompressing .gz / .bz2 / .xz transparently."""
    path = Path(path)
    if not path.exists():
        raise W2VError(f"corpus {path} does not exist; check the path")
    if path.is_dir():
        raise W2VError(f"corpus {path} is a directory; pass a text file (.txt, .gz, .bz2 or .xz)")
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)
    try:
        return opener(path, "rb")
    except OSError as e:
        raise W2VError(f"cannot open corpus {path}: {e.strerror or e}") from e


class _Replacements:
    """Counts the bytes replaced by U+FFFD under --encoding-errors replace."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, err: UnicodeDecodeError):
        self.bytes += err.end - err.start
        return "\ufffd", err.end


def iter_blocks(path: str | os.PathLike, encoding_errors: str = "strict",
                block_bytes: int = BLOCK_BYTES, stats: dict | None = None) -> Iterator[str]:
    """Yield decoded text blocks of about `block_bytes` bytes. `stats` receives the (decompressed) bytes
    decoded, the position in the file (`read`) and the bytes replaced under encoding_errors='replace'."""
    counter = _Replacements()
    handler = f"w2v_nce_count_{id(counter)}"
    codecs.register_error(handler, counter)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict" if encoding_errors == "strict" else handler)
    offset = 0
    with open_binary(path) as f:
        try:
            while True:
                try:
                    raw = f.read(block_bytes)
                except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
                    raise W2VError(f"cannot read corpus {path}: {e} (is the compressed file truncated?)") from e
                final = not raw
                held = len(decoder.getstate()[0])  # bytes of a split character kept from the last block
                if b"\x00" in raw:
                    raise W2VError(f"corpus {path} contains NUL bytes at byte {offset + raw.index(0)}: "
                                   "it looks binary, not text; pass a UTF-8 text file")
                try:
                    text = decoder.decode(raw, final)
                except UnicodeDecodeError as e:
                    # e.start counts from the held-back bytes, which precede this block
                    raise W2VError(f"corpus {path} is not valid UTF-8 at byte {offset - held + e.start}; "
                                   "fix the file or pass --encoding-errors replace") from None
                offset += len(raw)
                if stats is not None:
                    stats["bytes"] = offset
                    # the position in the file itself, compressed or not: what a progress bar can measure
                    stats["read"] = os.lseek(f.fileno(), 0, os.SEEK_CUR)
                if text:
                    yield text
                if final:
                    break
        finally:
            if stats is not None:
                stats["bytes"] = offset
                stats["replaced_bytes"] = counter.bytes


def iter_pieces(path: str | os.PathLike, lowercase: bool = False, encoding_errors: str = "strict",
                block_bytes: int = BLOCK_BYTES, stats: dict | None = None) -> Iterator[str]:
    """Yield block-sized pieces of the decoded text that start and end between tokens."""
    carry = ""
    for text in iter_blocks(path, encoding_errors, block_bytes, stats):
        text = carry + text
        if lowercase:
            text = text.lower()
        # The last token may continue in the next block unless the block ends in whitespace.
        cut = len(text)
        if not text[-1].isspace():
            cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"), text.rfind("\r"))
            if cut < 0 or len(text) - cut > MAX_TOKEN_CHARS:
                if len(text) > MAX_TOKEN_CHARS:
                    raise W2VError(f"corpus {path} has a token longer than {MAX_TOKEN_CHARS} characters: "
                                   "it does not look like whitespace-separated text")
                carry = text
                continue
            cut += 1
        carry = text[cut:]
        yield text[:cut]
    if carry:
        yield carry


def iter_tokens(path: str | os.PathLike, lowercase: bool = False, encoding_errors: str = "strict",
                block_bytes: int = BLOCK_BYTES, stats: dict | None = None) -> Iterator[list]:
    """Yield lists of tokens (str), with LINE_BREAK (None) between lines; lists are block-sized."""
    for piece in iter_pieces(path, lowercase, encoding_errors, block_bytes, stats):
        yield _split_lines(piece)


def describe(paths: list) -> str:
    """The corpus's name in messages: its file, or its first file and how many more."""
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more files)"


def reading_bar(paths: list[Path], desc: str, show: bool) -> tqdm:
    """A progress bar for a pass over the files, in bytes as stored (compressed or not), shown only if the pass takes
    more than a second; without a total where a path is not a file. Update it with the bytes read so far."""
    size = sum(p.stat().st_size for p in paths) if all(p.is_file() for p in paths) else None
    return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, delay=1.0, disable=not show,
                dynamic_ncols=True, leave=False)


def iter_token_bytes(path: str | os.PathLike, lowercase: bool = False, encoding_errors: str = "strict",
                     block_bytes: int = BLOCK_BYTES, stats: dict | None = None) -> Iterator[bytes]:
    """The same tokens as iter_tokens, as UTF-8 bytes in which b"\n" is a line break and every other byte
    of ASCII_SPACE separates tokens; for the compiled scan (table.next_token), which splits bytes, not str.

    A piece without Unicode whitespace is already that (Python's str.split() splits it at exactly ASCII_SPACE and
    b"\n", and a UTF-8 multi-byte character contains no ASCII byte, so the scan cannot split inside one): every
    ASCII piece, and most of any other script's. A piece with Unicode whitespace (U+00A0, U+2028, ...) is split
    here, so that it separates tokens as it does in iter_tokens, and re-joined with b" ".
    """
    for piece in iter_pieces(path, lowercase, encoding_errors, block_bytes, stats):
        if piece.isascii():  # O(1) in CPython: the flag of a compact ASCII string
            yield piece.encode("ascii")
        elif UNICODE_SPACE.search(piece) is None:
            yield piece.encode("utf-8")
        else:
            yield "\n".join(" ".join(line.split()) for line in piece.split("\n")).encode("utf-8")


def iter_corpus_bytes(paths: list, lowercase: bool, encoding_errors: str, stats: dict, progress=None
                      ) -> Iterator[bytes]:
    """The pieces of iter_token_bytes of each file of a corpus, one after another, a line break between two files
    where the first does not end with one; their stats summed into `stats`. progress(bytes read so far), if given,
    after each piece."""
    for key in ("bytes", "read", "replaced_bytes"):
        stats.setdefault(key, 0)
    for k, path in enumerate(paths):
        part: dict = {}
        piece = b"\n"
        for piece in iter_token_bytes(path, lowercase, encoding_errors, stats=part):
            yield piece
            if progress is not None:
                progress(stats["read"] + part.get("read", 0))
        if not piece.endswith(b"\n") and k + 1 < len(paths):  # a file's last line ends with the file
            yield b"\n"
        for key in ("bytes", "read", "replaced_bytes"):
            stats[key] += part.get(key, 0)


def _split_lines(text: str) -> list:
    lines = text.split("\n")
    if len(lines) == 1:
        return lines[0].split()
    out: list = []
    for i, line in enumerate(lines):
        if i:
            out.append(LINE_BREAK)
        out.extend(line.split())
    return out
