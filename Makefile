# w2v-nce: the README's commands. PYTHON may point at a virtual environment's interpreter.
PYTHON ?= python3
CORPUS ?= ../shared/corpora/wiki100m.txt.gz

.PHONY: install test test-slow bench text8 clean

# Installs torch only when none is present, so an existing CUDA build is kept; torch==2.13.0 is the
# CPU build (on a machine with network and a GPU, install your CUDA build of torch first).
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[test]"

test:
	$(PYTHON) -m pytest -q

test-slow:
	$(PYTHON) -m pytest -q -m slow

bench:
	$(PYTHON) -m w2v_nce.cli bench $(CORPUS) --out BENCH-REPORT.md

# text8 (Matt Mahoney's 100 MB Wikipedia sample) for real training; tests never need it.
text8: corpora/text8
corpora/text8:
	mkdir -p corpora
	$(PYTHON) -c "import urllib.request, zipfile, io; z = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen('http://mattmahoney.net/dc/text8.zip').read())); z.extract('text8', 'corpora')"

clean:
	rm -rf runs build *.egg-info .pytest_cache
