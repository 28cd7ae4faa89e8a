"""`make text8`: Matt Mahoney's text8 (100 MB of English Wikipedia, one line) into corpora/text8, for real training;
nothing needs it (the tests use gensim's corpora, `make demo` the slice in corpora/). Without a network: one line."""

import io
import sys
import urllib.request
import zipfile
from pathlib import Path

URL = "http://mattmahoney.net/dc/text8.zip"


def main(out: Path, url: str = URL) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
    except OSError as e:  # URLError, a timeout, a reset: the reason, not a traceback
        reason = getattr(e, "reason", None) or e
        sys.exit(f"error: cannot download {url}: {reason}; with no network, `make demo` trains on the corpus that "
                 f"ships in corpora/ (wiki10m.txt.gz)")
    try:
        zipfile.ZipFile(io.BytesIO(data)).extract("text8", out.parent)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        sys.exit(f"error: the download of {url} is not the text8 zip ({e}); try again later")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("corpora/text8"))
