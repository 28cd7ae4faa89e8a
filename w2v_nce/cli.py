"""The `w2v-nce` command: a thin Typer layer over the library.

Library code raises W2VError; `main` prints its message as one line on stderr and exits with its code
(1 for errors, 2 for usage errors, 130/143 when training was interrupted), with no traceback unless
--debug is given. In a torchrun job one rank reports an error the ranks share (distributed.py); the others
exit with its code and print nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__, help_format
from .run import rundir
from .config import parse_size, presets
from .errors import UsageError, W2VError


class _Group(TyperGroup):
    """Turns a W2VError from any command into one line on stderr and its exit code (no traceback)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except W2VError as e:
            if _debug or os.environ.get("W2V_NCE_DEBUG"):
                raise
            if not e.quiet:
                typer.echo(f"error: {e}", err=True)
            _tell_torchrun(e)
            ctx.exit(e.code)


def _tell_torchrun(e: W2VError) -> None:
    """Under torchrun, the error's line is also this process's reason in the failure report torchrun prints after
    it (its error file), where it would say "To enable traceback see: <a URL>"; torchrun's report itself cannot be
    turned off."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        try:
            Path(path).write_text(json.dumps({"message": str(e), "timestamp": int(time.time())}))
        except OSError:
            pass  # the report then says what it says without it


help_format.plain_arguments()
help_format.whole_words()
app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Train word2vec embeddings (CBOW or skip-gram) with negative sampling, true noise-contrastive "
                       "estimation, hierarchical softmax, InfoNCE, sampled softmax or the exact softmax, on the CPU "
                       "or CUDA; evaluate, query and export them.")
eval_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, short_help="Score vectors: analogies, similarities, held-out likelihood.", help="Score vectors the way published word2vec results are scored.")
app.add_typer(eval_app, name="eval")

_debug = False


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        def v(pkg):
            try:
                return version(pkg)
            except PackageNotFoundError:
                return "not installed"
        deps = ", ".join(f"{p} {v(p)}" for p in ("torch", "numba", "gensim"))
        typer.echo(f"w2v-nce {__version__} ({deps}; Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False):
    global _debug
    _debug = debug


@app.command(cls=help_format.Panels, short_help="Train vectors on a corpus into a run directory.")
def train(
    corpus: Annotated[Optional[list[Path]], typer.Argument(help="UTF-8 text, whitespace-tokenised, .gz/.bz2/.xz read transparently: files, directories (their .txt/.text/.tok/.gz/.bz2/.xz files and those without a suffix, in name order), quoted globs, or - for standard input (compressed too); read in order as one corpus.", show_default=False, metavar="CORPUS")] = None,
    config: Annotated[Optional[str], typer.Option("--config", rich_help_panel="Run", metavar="PRESET|FILE", help=f"A preset by name ({', '.join(presets())}) or a TOML file; flags override it.")] = None,
    model: Annotated[Optional[str], typer.Option(rich_help_panel="Model", help="sg (skip-gram) or cbow.", show_default="sg", metavar="[sg|cbow]")] = None,
    loss: Annotated[Optional[str], typer.Option(rich_help_panel="Head", help="Output head: neg (negative sampling), nce, hs (hierarchical softmax), infonce, sampled-softmax or softmax (exact).", show_default="neg", metavar="[neg|nce|hs|infonce|sampled-softmax|softmax]")] = None,
    dim: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="Vector size.", show_default="100", metavar="INTEGER")] = None,
    window: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="Maximum window; each centre draws 1..W.", show_default="5", metavar="INTEGER")] = None,
    negatives: Annotated[Optional[int], typer.Option(rich_help_panel="Head", help="Noise words k per example (neg, nce, infonce, sampled-softmax).", show_default="5", metavar="INTEGER")] = None,
    min_count: Annotated[Optional[int], typer.Option(rich_help_panel="Data", help="Drop words rarer than this.", show_default="5", metavar="INTEGER")] = None,
    max_vocab: Annotated[Optional[int], typer.Option(rich_help_panel="Data", help="Keep only the N most frequent words.", show_default="all", metavar="INTEGER")] = None,
    vocab_memory: Annotated[Optional[str], typer.Option(rich_help_panel="Data", help="Memory for the vocabulary pass's table of distinct words (bytes, or 512M, 2G, ...). Past it the words are counted in parts on disk in the run directory and the text is read twice: the same vocabulary, slower.", show_default="512M", metavar="SIZE")] = None,
    sample: Annotated[Optional[float], typer.Option(rich_help_panel="Data", help="Sub-sampling threshold t; 0 turns it off.", show_default="1e-3", metavar="FLOAT")] = None,
    noise_power: Annotated[Optional[float], typer.Option(rich_help_panel="Head", help="Noise distribution unigram^p.", show_default="0.75", metavar="FLOAT")] = None,
    epochs: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="Passes over the corpus.", show_default="5", metavar="INTEGER")] = None,
    lr: Annotated[Optional[float], typer.Option(rich_help_panel="Model", help="Initial learning rate, decayed linearly to lr*1e-4.", show_default="0.025 sg, 0.05 cbow and with --subwords", metavar="FLOAT")] = None,
    batch_size: Annotated[Optional[int], typer.Option(rich_help_panel="Run", help="Examples per call of the training step (sg with hs: 65536 on the compiled CPU step; hs: 256 with --kernel torch; on a GPU 1048576 per kernel launch).", show_default="4096", metavar="INTEGER")] = None,
    shared_noise: Annotated[Optional[int], typer.Option(rich_help_panel="Head", help="Consecutive examples that share one draw of the k noise words (1: each draws its own, as word2vec; on the CPU one process of sg shares 8 with neg or nce, 4 with sampled-softmax, 2 with infonce; none with --subwords or under torchrun; with --subwords sg shares a draw among N consecutive centres' examples, one process on the CPU only).", show_default="1", metavar="INTEGER")] = None,
    lowercase: Annotated[Optional[bool], typer.Option("--lowercase/--no-lowercase", rich_help_panel="Data", help="Lower-case the text.", show_default="no")] = None,
    encoding_errors: Annotated[Optional[str], typer.Option(rich_help_panel="Data", help="Invalid UTF-8: strict (stop) or replace.", show_default="strict", metavar="[strict|replace]")] = None,
    phrases: Annotated[Optional[int], typer.Option(rich_help_panel="Data", help="Phrase passes before the vocabulary, as `w2v-nce phrases --passes N` (word2phrase's score, --min-count, threshold 100 for the last pass and twice the next one's for each earlier one): the vocabulary and training see new_york as one token.", show_default="0", metavar="INTEGER")] = None,
    subwords: Annotated[Optional[str], typer.Option(rich_help_panel="Model", help="fastText's subword vectors: a word's input vector is the mean of its own row and the rows of its character n-grams of MIN to MAX characters (with < and > marking its ends), so that words never seen get vectors too. 3-6 is fastText's; 1-4 suits Korean.", show_default="none", metavar="MIN-MAX")] = None,
    jamo: Annotated[Optional[bool], typer.Option("--jamo/--no-jamo", rich_help_panel="Model", help="With --subwords: each Hangul word's jamo n-grams of 3 to 5 jamo too (its syllables written as initial, vowel and final consonant, 'e' for no final; Park et al. 2018, with --subwords 1-4). Words without Hangul get their character n-grams only.", show_default="no")] = None,
    eos: Annotated[Optional[bool], typer.Option("--eos/--no-eos", rich_help_panel="Model", help="Every line ends with the word </s>, in the windows of its last words, as fastText trains (word2vec.c and gensim end a sentence there instead).", show_default="on with --subwords, else off")] = None,
    buckets: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="With --subwords: buckets the n-grams are hashed into (fastText's -bucket); only those the words use take memory.", show_default="2000000", metavar="INTEGER")] = None,
    device: Annotated[Optional[str], typer.Option(rich_help_panel="Run", help="auto (CUDA when available), cpu or cuda.", show_default="auto", metavar="[auto|cpu|cuda]")] = None,
    kernel: Annotated[Optional[str], typer.Option(rich_help_panel="Run", help="Training step: fused (compiled, Hogwild updates as in word2vec: CPU threads or GPU warps; every head but softmax), torch (tensor ops, mini-batch SGD; reproducible with any threads) or auto (fused where numba can run it).", show_default="auto", metavar="[auto|fused|torch]")] = None,
    threads: Annotated[Optional[int], typer.Option(rich_help_panel="Run", help="CPU threads; 0 = all cores.", show_default="0", metavar="INTEGER")] = None,
    seed: Annotated[Optional[int], typer.Option(rich_help_panel="Run", help="Random seed; CPU runs are reproducible with --threads 1 (or --kernel torch).", show_default="1", metavar="INTEGER")] = None,
    out: Annotated[Optional[Path], typer.Option(rich_help_panel="Run", help="Run directory.", show_default="runs/<corpus>-<model>-<loss>", metavar="PATH")] = None,
    resume: Annotated[Optional[Path], typer.Option(rich_help_panel="Run", help="Continue an interrupted run directory.", metavar="PATH")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", rich_help_panel="Run", help="Replace the run in --out (a run directory w2v-nce wrote, finished or not; not while another process writes it).")] = False,
    init: Annotated[Optional[Path], typer.Option(rich_help_panel="Run", help="Continue training a finished run on CORPUS: its words plus CORPUS's words that reach --min-count, counts summed; its vectors carried, new words' started as in a new run; the learning rate starts again at --lr. Its model, head (--loss, --negatives, --noise-power), --dim, --window, --min-count, --lr, --sample tokenisation (--lowercase, --encoding-errors, --phrases) and subwords (--subwords, --buckets, --jamo, --eos) are taken unless --config or a flag sets them. --epochs 0 gives its vectors back, with the new words'.", metavar="PATH")] = None,
    eval_epochs: Annotated[Optional[bool], typer.Option("--eval-epochs/--no-eval-epochs", rich_help_panel="Run", help="Score analogies, WordSim353 and SimLex-999 at each epoch end and record them in metrics.jsonl.", show_default="no")] = None,
    sync_words: Annotated[Optional[int], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: words each process trains between synchronisations of the model's replicas (fewer: closer to one process, more time in collectives).", show_default="1000000", metavar="INTEGER")] = None,
    sync: Annotated[Optional[str], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: full (all-reduce every matrix whole) or rows (only the rows some process changed since the last synchronisation).", show_default="full", metavar="[full|rows]")] = None,
    sync_gain: Annotated[Optional[str], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: a synchronisation sets the model to P0 + gain x the mean of the replicas' changes since the last one, P0, and each process trains at (processes / gain) x --lr, which to first order is one process's training. A number G: that gain (1 averages the replicas, the number of processes sums their changes; above 2 it can diverge). auto: (processes + 2) / 4, at most 2 (2 processes: the average at 2 x --lr; 4: 1.5 x the mean at 2.67 x --lr; 8: 2 x the mean at 4 x --lr). per-row: --lr, and each row its own gain, from 1 where the replicas changed it alike to the number of processes where independently.", show_default="auto", metavar="[auto|per-row|G]")] = None,
    sync_hot_rows: Annotated[Optional[int], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: the most frequent words' rows (the rows every update touches), combined every --sync-hot-words words as well; 0 turns it off.", show_default="2000", metavar="INTEGER")] = None,
    sync_hot_words: Annotated[Optional[int], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: words each process trains between combinations of the hot rows.", show_default="50000", metavar="INTEGER")] = None,
    sync_timeout: Annotated[Optional[float], typer.Option(rich_help_panel="Torchrun (several processes)", help="Under torchrun: seconds to wait for a process at a synchronisation before stopping with an error naming it (a dead one is named within about 10 s). Also with --resume.", show_default="300", metavar="FLOAT")] = None,
    keep_corpus: Annotated[Optional[bool], typer.Option("--keep-corpus/--no-keep-corpus", rich_help_panel="Run", help="Keep corpus.ids (the tokenised corpus, 4 bytes a word) once the run has finished; a resume needs it only while the run is unfinished.", show_default="no")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", rich_help_panel="Run", help="Show the progress bar.", show_default="yes")] = True,
):
    """Tokenize CORPUS, build the vocabulary and noise table, train, and write a run directory."""
    from . import api, config as config_mod
    from .run.distributed import env_rank

    if resume is not None:
        api.train(out=resume, resume=True, overwrite=overwrite, progress=progress, log=_info,
                  sync_timeout=sync_timeout)
        return
    if not corpus:
        raise typer.BadParameter("missing CORPUS (or pass --resume RUN_DIR)", param_hint="CORPUS")
    flags = dict(model=model, loss=loss, dim=dim, window=window, negatives=negatives, min_count=min_count,
                 max_vocab=max_vocab, vocab_memory=vocab_memory, sample=sample, noise_power=noise_power,
                 epochs=epochs, lr=lr,
                 batch_size=batch_size, shared_noise=shared_noise, lowercase=lowercase,
                 encoding_errors=encoding_errors, phrases=phrases, subwords=subwords, buckets=buckets, jamo=jamo, eos=eos, device=device,
                 kernel=kernel, threads=threads, seed=seed, eval_epochs=eval_epochs, sync_words=sync_words,
                 sync=sync, sync_timeout=sync_timeout, sync_hot_rows=sync_hot_rows,
                 sync_hot_words=sync_hot_words, keep_corpus=keep_corpus)
    try:
        flags["sync_gain"] = config_mod.parse_gain(sync_gain)
        api.train(corpus, out, config=config, init=init, overwrite=overwrite, progress=progress, log=_info,
                  **{k: v for k, v in flags.items() if v is not None})
    except UsageError as e:
        e.quiet = env_rank() > 0  # every rank checks the same flags: rank 0 says what is wrong
        raise


@app.command("phrases", cls=help_format.Panels, short_help="Join phrases (new york -> new_york) in a text.")
def phrases_cmd(
    corpus: Annotated[list[Path], typer.Argument(help="UTF-8 text as train reads it: files, directories, quoted globs or - for standard input, read in order as one corpus.", show_default=False, metavar="CORPUS")],
    out: Annotated[Path, typer.Option(help="The text to write: CORPUS with its phrases joined, line for line, tokens separated by one space.", show_default=False, metavar="PATH")],
    min_count: Annotated[int, typer.Option(help="A pair seen fewer times never joins.", metavar="INTEGER")] = 5,
    threshold: Annotated[Optional[list[float]], typer.Option(metavar="FLOAT", help="A pair joins when its score is above it. Given once, the last pass's: each earlier pass takes twice the next one's with word2vec scoring (--passes 2: 200, then 100, as word2vec.c's demo-phrases.sh), the same with npmi. Or once per pass, the first pass's first. npmi needs one, in [-1, 1].", show_default="100 with word2vec scoring")] = None,
    passes: Annotated[int, typer.Option(help="Phrase passes, each on the last one's output: a pass joins two tokens, 2 passes up to 4.", metavar="INTEGER")] = 1,
    scoring: Annotated[str, typer.Option(help="word2vec: word2phrase's (count(ab) - min_count) / (count(a) count(b)) x tokens, its output exactly; npmi: gensim's normalised PMI, in [-1, 1].", metavar="[word2vec|npmi]")] = "word2vec",
    delimiter: Annotated[str, typer.Option(help="What joins the tokens of a phrase.", metavar="TEXT")] = "_",
    lowercase: Annotated[bool, typer.Option("--lowercase/--no-lowercase", help="Lower-case the text first.", show_default="no")] = False,
    encoding_errors: Annotated[str, typer.Option(help="Invalid UTF-8: strict (stop) or replace.", metavar="[strict|replace]")] = "strict",
    memory: Annotated[str, typer.Option(help="Memory for the tables of distinct words and pairs (bytes, or 512M, 2G, ...). Past it they are counted in parts on disk beside --out and the text is read three times: the same output, slower. train --phrases takes --vocab-memory's.", metavar="SIZE")] = "512M",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar for each read of the text.", show_default="yes")] = True,
):
    """Join phrases ("new york" -> "new_york") as word2vec.c's word2phrase or gensim's Phrases do, into a text for
    train (train --phrases N does it on the fly)."""
    from .corpus import phrases as phrases_mod

    done = phrases_mod.build(corpus, out, min_count=min_count, threshold=threshold, passes=passes, scoring=scoring,
                             delimiter=delimiter, lowercase=lowercase, encoding_errors=encoding_errors,
                             memory=parse_size(memory, "--memory"), progress=progress, log=_info)
    _info(f"wrote {out}: {done['tokens']:,} tokens in, {done['tokens_out']:,} out, in {done['seconds']:.1f} s")


TRUST_HELP = ("Read a .kv pickle with gensim's own loader, which runs whatever code the file names: only for a file "
              "from someone you trust. Without it, a .kv file that asks for more than gensim's KeyedVectors is refused.")
TrustPickle = Annotated[bool, typer.Option("--trust-pickle", help=TRUST_HELP)]


@app.command("export", cls=help_format.Panels, short_help="Write vectors as .kv, word2vec text or binary, or for the projector.")
def export_cmd(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory or vectors file.", metavar="RUN", show_default="runs/latest")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output file; its suffix picks the format (.kv, .txt/.vec, .bin). With --format projector, the files' prefix.", show_default="RUN_DIR/vectors.txt (projector: RUN_DIR/vectors_tensor.tsv and RUN_DIR/vectors_metadata.tsv)", metavar="PATH")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="kv, word2vec (text), word2vec-binary, projector (TensorBoard's: PREFIX_tensor.tsv and PREFIX_metadata.tsv, as gensim's word2vec2tensor writes them) or fasttext (fastText's .bin model, default RUN_DIR/vectors.ft.bin: fasttext.load_model and gensim's load_facebook_vectors read it, and answer words never seen from a --subwords run's n-grams).", metavar="[kv|word2vec|word2vec-binary|projector|fasttext]")] = None,
    checkpoint: Annotated[bool, typer.Option("--checkpoint", help="Write the vectors of the run's checkpoint: the latest state of an interrupted run (default out: RUN_DIR/checkpoint-vectors.txt).")] = False,
    trust_pickle: TrustPickle = False,
):
    """Write the vectors in gensim's formats: .kv (KeyedVectors) or word2vec text / binary; or as the two TSV files
    of TensorBoard's embedding projector."""
    from .tools.export import export

    path, fmt = export(rundir.resolve(run_dir), out, format, checkpoint, trust_pickle)
    if fmt == "projector":  # two files, and both are needed: the page loads them as a pair
        metadata = path.with_name(path.name.removesuffix("_tensor.tsv") + "_metadata.tsv")
        _info(f"wrote {path} and {metadata} (projector): load them at projector.tensorflow.org")
    else:
        _info(f"wrote {path} ({fmt})")


@eval_app.command("analogies", cls=help_format.Panels, short_help="Analogy accuracy, as gensim and word2vec score it.")
def eval_analogies(
    vectors: Annotated[Optional[Path], typer.Argument(help="Run directory, .kv, word2vec text or binary file.", metavar="VECTORS", show_default="runs/latest")] = None,
    questions: Annotated[Optional[Path], typer.Option(help="Analogy file ('a b c d' lines, ': section' headers).", show_default="gensim's questions-words.txt", metavar="PATH")] = None,
    restrict_vocab: Annotated[int, typer.Option(help="Only the N most frequent words are candidates and in vocabulary.", metavar="INTEGER")] = 30000,
    method: Annotated[str, typer.Option(help="3cosadd (word2vec's) or 3cosmul (Levy & Goldberg).", metavar="[3cosadd|3cosmul]")] = "3cosadd",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    trust_pickle: TrustPickle = False,
):
    """Analogy accuracy (a:b :: c:?), per section and in total, as gensim's evaluate_word_analogies."""
    from .tools import evaluate

    if method not in ("3cosadd", "3cosmul"):
        raise typer.BadParameter(f"{method!r}: choose 3cosadd or 3cosmul", param_hint="--method")
    if restrict_vocab <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--restrict-vocab")
    kv = _eval_vectors(rundir.resolve(vectors), trust_pickle)
    result = evaluate.analogies(kv, questions, restrict_vocab=restrict_vocab, method=method)
    typer.echo(json.dumps(result) if json_out else evaluate.format_analogies(result))


@eval_app.command("similarity", cls=help_format.Panels, short_help="Correlation with human similarity judgements.")
def eval_similarity(
    vectors: Annotated[Optional[Path], typer.Argument(help="Run directory, .kv, word2vec text or binary file.", metavar="VECTORS", show_default="runs/latest")] = None,
    pairs: Annotated[str, typer.Option(help="ws353, simlex999 or a file of 'word1<TAB>word2<TAB>score' lines.", metavar="[ws353|simlex999|FILE]")] = "ws353",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    trust_pickle: TrustPickle = False,
):
    """Spearman and Pearson correlation with human similarity judgements, and the OOV ratio."""
    from .tools import evaluate

    kv = _eval_vectors(rundir.resolve(vectors), trust_pickle)
    result = evaluate.similarity(kv, pairs)
    typer.echo(json.dumps(result) if json_out else evaluate.format_similarity(result))


@eval_app.command("heldout", cls=help_format.Panels, short_help="Exact log Z(c) and NLL on held-out text: is it normalised?")
def eval_heldout(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory.", metavar="RUN", show_default="runs/latest")] = None,
    corpus: Annotated[Path, typer.Option(help="Held-out text, not used in training.", show_default=False, metavar="PATH")] = ...,
    max_contexts: Annotated[int, typer.Option(help="Contexts sampled from the text (each costs a pass over the vocabulary).", metavar="INTEGER")] = 20000,
    seed: Annotated[int, typer.Option(help="Seed for sampling the contexts.", metavar="INTEGER")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Exact log Z(c) over the whole vocabulary and held-out NLL / perplexity: is the model normalised?"""
    from .tools import heldout

    if max_contexts <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--max-contexts")
    stats = heldout.evaluate_run(rundir.resolve(run_dir), corpus, max_contexts, seed)
    typer.echo(json.dumps(stats) if json_out else heldout.format_stats(stats))


VECTORS_HELP = "Run directory, .kv, word2vec text or binary file (also .gz, .bz2)."


@app.command("similar", cls=help_format.Panels, short_help="Nearest words to a word, or to the sum of several.")
def similar_cmd(
    words: Annotated[Optional[list[str]], typer.Argument(help="Query words; several: the neighbours of their sum (word2vec's distance on a line of several words). None: a prompt that answers one query a line.", show_default=False, metavar="WORD")] = None,
    vectors: Annotated[Optional[Path], typer.Option(help=VECTORS_HELP, show_default="runs/latest", metavar="PATH")] = None,
    topn: Annotated[int, typer.Option(help="Neighbours per query.", metavar="INTEGER")] = 10,
    each: Annotated[bool, typer.Option("--each", help="One list per word instead of the neighbours of their sum.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object: the query (the words joined by ' + '; with --each, each word) -> [[word, cosine], ...].")] = False,
    trust_pickle: TrustPickle = False,
):
    """Nearest neighbours by cosine similarity (word2vec's distance; gensim's most_similar). Several words: the
    neighbours of the sum of their unit vectors, the words left out (gensim's most_similar(positive=[...])); --each:
    each word's own. Without WORD, a prompt: one query a line until end of input, the vectors loaded once."""
    from .tools import query

    source = rundir.resolve(vectors)
    kv = query.load(source, trust_pickle)

    def answer(query_words: list[str]) -> str:
        result = query.similar(kv, query_words, topn, source, each)
        note = query.unseen_note(kv, query_words)
        if note and not json_out:
            _info(note)
        return json.dumps(result) if json_out else query.format_similar(result, query_words, each)
    _answer_all(answer, words, None, "words" if each else "a word, or several for their sum")


@app.command("analogy", cls=help_format.Panels, short_help="A is to B as C is to what?")
def analogy_cmd(
    a: Annotated[Optional[str], typer.Argument(help="A is to B ...: the first word of the example pair.", show_default=False, metavar="A")] = None,
    b: Annotated[Optional[str], typer.Argument(help="... B ...: its counterpart.", show_default=False, metavar="B")] = None,
    c: Annotated[Optional[str], typer.Argument(help="... as C is to ?: the word whose counterpart is asked for. None of the three: a prompt that answers one query of three words a line (word2vec's word-analogy).", show_default=False, metavar="C")] = None,
    vectors: Annotated[Optional[Path], typer.Option(help=VECTORS_HELP, show_default="runs/latest", metavar="PATH")] = None,
    topn: Annotated[int, typer.Option(help="Answers to show.", metavar="INTEGER")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON list [[word, score], ...].")] = False,
    trust_pickle: TrustPickle = False,
):
    """A is to B as C is to ? (word2vec's word-analogy; gensim's most_similar(positive=[B, C], negative=[A])).
    Without A B C, a prompt: three words a line until end of input, the vectors loaded once."""
    from .tools import query

    given = [w for w in (a, b, c) if w is not None]
    if given and len(given) != 3:
        raise typer.BadParameter("give three words, A B C, or none for a prompt", param_hint="A B C")
    source = rundir.resolve(vectors)
    kv = query.load(source, trust_pickle)

    def answer(w: list[str]) -> str:
        result = query.analogy(kv, *w, topn, source)
        note = query.unseen_note(kv, w)
        if note and not json_out:
            _info(note)
        return json.dumps(result) if json_out else query.format_analogy(*w, result)
    _answer_all(answer, given, 3, "three words: A B C")


def _answer_all(answer, words: list[str] | None, n: int | None, what: str) -> None:
    """The answer to the words given, or without any, to each line of standard input until its end, as word2vec.c's
    distance and word-analogy do: a line's bad query is one line on stderr, and the prompt goes on."""
    if words:
        typer.echo(answer(list(words)))
        return
    ask = sys.stdin.isatty()
    while True:
        if ask:
            typer.echo(f"Enter {what} (end of input: Ctrl-D): ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:
            break
        query_words = line.split()
        if not query_words:
            continue
        try:
            if n is not None and len(query_words) != n:
                raise UsageError(f"expected {what}, got {len(query_words)} word{'s' if len(query_words) > 1 else ''}")
            typer.echo(answer(query_words))
        except W2VError as e:
            typer.echo(f"error: {e}", err=True)


@app.command("plot", cls=help_format.Panels, short_help="Pictures of runs: loss, scores, learning rate; log Z.")
def plot_cmd(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories.", metavar="RUN", show_default="runs/latest")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The PNG file to write.", show_default="FIRST_RUN/training.png, or FIRST_RUN/logz.png with --heldout", metavar="PATH")] = None,
    heldout: Annotated[Optional[Path], typer.Option(help="Draw instead the distribution of the exact log Z(c) over contexts of this held-out text, one histogram per run.", show_default=False, metavar="PATH")] = None,
    max_contexts: Annotated[int, typer.Option(help="With --heldout: contexts sampled from the text.", metavar="INTEGER")] = 20000,
):
    """Pictures of runs: loss (and per-epoch scores) over a strip of the learning rate, against words trained (or each run's fraction of its training, for runs whose sizes differ more than 10x); or, with --heldout, the held-out log Z(c) distributions. Needs matplotlib: pip install 'w2v-nce[plot]'."""
    from .tools import plot

    if max_contexts <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--max-contexts")
    runs = runs or [rundir.resolve(None)]
    out = out or Path(runs[0]) / ("training.png" if heldout is None else "logz.png")
    path = plot.training(runs, out) if heldout is None else plot.log_z(runs, heldout, out, max_contexts)
    _info(f"wrote {path}")


@app.command("bench", cls=help_format.Panels, short_help="Ours against gensim on one corpus: speed and scores.")
def bench_cmd(
    corpus: Annotated[Path, typer.Argument(help="Text corpus (.gz/.bz2/.xz read directly).", show_default=False, metavar="CORPUS")],
    model: Annotated[Optional[list[str]], typer.Option(metavar="[sg|cbow]", help="sg and/or cbow (repeat the flag).", show_default="both")] = None,
    loss: Annotated[Optional[list[str]], typer.Option(metavar="[neg|nce|hs|infonce|sampled-softmax|softmax]", help="neg, nce, hs, infonce, sampled-softmax and/or softmax (repeat; with hs, gensim's hierarchical softmax runs too).", show_default="neg and nce")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs for every model.", metavar="INTEGER")] = 5,
    threads: Annotated[int, typer.Option(help="CPU threads for both tools; 0 = all cores.", metavar="INTEGER")] = 0,
    ours_only: Annotated[bool, typer.Option("--ours-only", help="Skip gensim (quick timing).")] = False,
    dim: Annotated[int, typer.Option(help="Vector size.", metavar="INTEGER")] = 100,
    negatives: Annotated[int, typer.Option(help="Noise words k (both tools).", metavar="INTEGER")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(help="Our examples per SGD step.", show_default="train's", metavar="INTEGER")] = None,
    shared_noise: Annotated[Optional[int], typer.Option(help="Our examples that share a draw of noise words.", show_default="train's", metavar="INTEGER")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed of both tools.", show_default="1", metavar="INTEGER")] = None,
    max_vocab: Annotated[Optional[int], typer.Option(help="Cap the vocabulary (both tools).", metavar="INTEGER")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="Our CPU step for neg/nce: auto, fused or torch.", show_default="train's", metavar="[auto|fused|torch]")] = None,
    device: Annotated[Optional[list[str]], typer.Option(metavar="[cpu|cuda|auto]", help="Where ours trains: cpu, cuda or auto (repeat the flag for several; gensim always runs on the CPU).", show_default="cpu")] = None,
    heldout_fraction: Annotated[float, typer.Option(help="Share of the corpus (its end) held out for log Z / NLL.", metavar="FLOAT")] = 0.005,
    repeats: Annotated[int, typer.Option(help="Rounds of the whole run; each row keeps its best speed and mean scores.", metavar="INTEGER")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per trained model.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Also write the Markdown report here.", metavar="PATH")] = None,
):
    """Train ours and gensim's Word2Vec on the same corpus, settings and threads; one side-by-side table."""
    from .tools import bench
    from .config import LOSSES

    models, losses = model or ["sg", "cbow"], loss or ["neg", "nce"]
    for m in models:
        if m not in ("sg", "cbow"):
            raise typer.BadParameter(f"{m!r}: choose sg or cbow", param_hint="--model")
    for l in losses:
        if l not in LOSSES:
            raise typer.BadParameter(f"{l!r}: choose from {', '.join(LOSSES)}", param_hint="--loss")
    devices = device or ["cpu"]
    for d in devices:
        if d not in ("cpu", "cuda", "auto"):
            raise typer.BadParameter(f"{d!r}: choose cpu, cuda or auto", param_hint="--device")
    if epochs <= 0 or threads < 0 or repeats <= 0 or not 0 < heldout_fraction < 0.5:
        raise typer.BadParameter("need epochs > 0, threads >= 0, repeats > 0 and 0 < heldout-fraction < 0.5")
    if not corpus.exists():
        raise W2VError(f"corpus {corpus} does not exist; check the path")
    overrides = {k: v for k, v in dict(dim=dim, negatives=negatives, batch_size=batch_size, seed=seed,
                                       shared_noise=shared_noise,
                                       max_vocab=max_vocab, kernel=kernel).items() if v is not None}
    rows, meta = bench.bench(corpus, models, losses, epochs, threads or os.cpu_count() or 1, ours_only,
                             heldout_fraction, overrides=overrides, devices=tuple(devices), repeats=repeats,
                             log=_info)
    # the command line as typed, also through `python -m w2v_nce` (whose argv[0] is not w2v-nce)
    command = "w2v-nce " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "w2v-nce bench"
    report = bench.markdown(rows, meta, command)
    if out is not None:
        bench.write_report(out, report)
    typer.echo(json.dumps(rows) if json_out else report)


def _eval_vectors(source: Path, trust_pickle: bool):
    """The vectors eval scores: a subword run's FastTextKeyedVectors (words never seen too), else the file's."""
    from .run import vectors as run_vectors
    from .tools import vectorfiles
    if source.is_dir() and (source / rundir.CONFIG).is_file() and rundir.read_config(source)[0].subwords is not None:
        return run_vectors.of_run(rundir.load_run(source))
    return vectorfiles.load_vectors(source, trust_pickle)


def _info(msg: str) -> None:
    typer.echo(msg, err=True)


def main() -> None:
    """Console-script entry point."""
    if int(os.environ.get("WORLD_SIZE") or 1) > 1:
        # The processes of a torchrun job share the machine's cores, and OpenMP threads that spin while they wait
        # for work (libgomp's default) take them from the other processes: with 2 processes on 2 cores a
        # synchronisation took 0.11 s instead of 0.014 s, and training 4x as long. OpenMP reads this when it
        # loads (with torch or the compiled step, both imported later).
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    app()


if __name__ == "__main__":
    main()
