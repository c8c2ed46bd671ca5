"""The sequence model in a process of its own, forked by `malseq scan` before its own imports.

Loading the model is a third of a small scan's CPU: numpy (which onnxruntime's binding imports
whole), onnxruntime, tokenizers, tokenizer.json and the session. In a thread of the scanning
process that work shares the interpreter lock with the scanner's imports and analysis, so it
mostly adds to the wall time instead of overlapping it. `ModelProcess.start()` forks a child
first thing (only its interpreter exists yet), which imports the runtime and opens the shipped
model on another core while the parent imports, parses its arguments and analyses; `load()` names
the model folder (another folder is loaded instead), and `TextScorer` sends it the texts to score.
The child scores with the same `SequenceScorer` as the scanning process would, so every score is
the same bit for bit (`tests/model/test_process.py`).

Nothing here ever decides a verdict alone: when the child cannot start, fails to load or dies,
`scorer()` answers None and the caller loads the model itself, which reports any problem as it
always has. Forking is done only where it is safe (Linux, a single thread, no onnxruntime in
this process yet: a process that already has it gains nothing). The child ignores Ctrl-C, never
writes to stdout, and exits (without the interpreter's teardown) as soon as its pipe closes: at
`close()`, or when the parent dies. Messages are JSON lines (a float's JSON text reads back as
the same float).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when used: this module is imported before the fork, which it must not delay
    from malseq.model.infer import ModelCard

# descriptors of every model process's pipes in this process: a process forked from it later (an
# isolated worker) closes them, so a child still sees its pipe close when this process is gone
_OPEN_PIPE_FDS: set[int] = set()


def _close_inherited_pipes() -> None:
    for fd in list(_OPEN_PIPE_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _OPEN_PIPE_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_pipes)


def fork_is_safe() -> bool:
    """A plain fork copies one thread: safe only while this process runs one (Linux, per /proc),
    and useless once onnxruntime is in this process (its model may already be loaded here)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork") or "onnxruntime" in sys.modules:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class ModelProcess:
    """A forked child that imports the model runtime at once and loads the model `load()` names."""

    def __init__(self, pid: int, requests: IO[bytes], replies: IO[bytes]) -> None:
        self.pid = pid
        self._requests = requests
        self._replies = replies
        self._model_dir: Path | None = None
        self._loaded = False
        self._scorer: TextScorer | None = None
        self._failed = False
        self._closed = False

    @classmethod
    def start(cls) -> ModelProcess | None:
        """Fork the child; None where forking is not safe or fails (the caller loads the model itself)."""
        if not fork_is_safe():
            return None
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        try:
            pid = os.fork()
        except OSError:
            for fd in (to_child_r, to_child_w, to_parent_r, to_parent_w):
                os.close(fd)
            return None
        if pid == 0:  # pragma: no cover - the child's coverage is not collected; tests check what it answers
            code = 1
            try:
                os.close(to_child_w)
                os.close(to_parent_r)
                _child(to_child_r, to_parent_w)
                code = 0
            finally:
                os._exit(code)  # never the parent's code, its atexit handlers or its buffered output
        os.close(to_child_r)
        os.close(to_parent_w)
        _OPEN_PIPE_FDS.update((to_child_w, to_parent_r))
        return cls(pid, os.fdopen(to_child_w, "wb", buffering=0), os.fdopen(to_parent_r, "rb"))

    def load(self, model_dir: Path | None = None) -> None:
        """Ask the child to load the model in `model_dir` (default: the shipped one); returns at once."""
        from malseq.model.infer import card_ecosystems, model_path

        if self._loaded or self._closed:
            return
        self._loaded = True
        self._model_dir = model_path(model_dir)
        # the card's check needs the ecosystems intake knows: this process has intake imported, the child need not
        if not self._send({"load": str(self._model_dir), "ecosystems": list(card_ecosystems())}):
            self._failed = True

    def scorer(self) -> TextScorer | None:
        """The loaded model once the child has it (waits for it), or None when it failed: then the
        caller loads the model itself and reports whatever went wrong."""
        from malseq.model import CARD_FILE
        from malseq.model.infer import ModelCard

        if self._scorer is not None or self._failed or self._closed or self._model_dir is None:
            return self._scorer
        try:
            card = ModelCard.read(self._model_dir / CARD_FILE)  # while the child may still be loading
            reply = self._receive()
            if reply is None or reply.get("ready") is not True:
                raise ValueError(f"model process: {reply!r}")
        except Exception:  # noqa: BLE001 - a failed child is never an error of its own: the caller loads
            self._failed = True
            return None
        self._scorer = TextScorer(self, self._model_dir, card)
        return self._scorer

    def score(self, texts: Sequence[str]) -> list[float]:
        """The child's `SequenceScorer.score(texts)`; raises ModelProcessFailed when it cannot answer."""
        if self._failed or self._closed or not self._send({"score": list(texts)}):
            self._failed = True
            raise ModelProcessFailed("the model process is gone")
        reply = self._receive()
        scores = reply.get("scores") if reply is not None else None
        if not isinstance(scores, list) or len(scores) != len(texts) or \
                not all(isinstance(s, float) for s in scores):
            self._failed = True
            raise ModelProcessFailed(f"the model process answered {reply!r}")
        return scores

    def finish(self) -> None:
        """Let the child go (it exits when its pipe closes) without waiting: what this process still
        does, a report, overlaps the child's exit. Scoring after this loads the model here."""
        if self._closed:
            return
        self._closed = True
        if not self._loaded:
            # still importing, or waiting for a model it will not need: stop it now, not after its imports
            with contextlib.suppress(OSError):
                os.kill(self.pid, 9)
        for stream in (self._requests, self._replies):
            _OPEN_PIPE_FDS.discard(stream.fileno())
            with contextlib.suppress(OSError):
                stream.close()

    def close(self) -> None:
        """Stop the child and wait for it (so its CPU time counts as this process's children's)."""
        self.finish()
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            self._requests.write(json.dumps(message).encode("utf-8") + b"\n")
            return True
        except OSError:  # the child is gone (BrokenPipeError)
            return False

    def _receive(self) -> dict[str, Any] | None:
        try:
            line = self._replies.readline()
            reply = json.loads(line) if line else None
        except (OSError, ValueError):
            return None
        return reply if isinstance(reply, dict) else None


class ModelProcessFailed(Exception):
    """The model process stopped answering (the caller scores in this process instead)."""


class TextScorer:
    """The model loaded in a `ModelProcess`, used as `malseq.model.scoring.score_inputs` uses a
    `SequenceScorer`: the card (read here too), its thresholds, and `score(texts)`."""

    def __init__(self, process: ModelProcess, model_dir: Path, card: ModelCard) -> None:
        self._process = process
        self.model_dir = model_dir
        self.card = card

    def threshold_for(self, operating_point: str, ecosystem: str | None = None) -> float:
        from malseq.model.infer import card_threshold

        return card_threshold(self.card, self.model_dir, operating_point, ecosystem)

    def score(self, texts: Sequence[object]) -> list[float]:
        from malseq.model.text import model_text

        # the same text `SequenceScorer.score` would tokenise: normalised here, and again (unchanged) there
        return self._process.score([model_text(t) for t in texts]) if texts else []


def _child(requests_fd: int, replies_fd: int) -> None:  # pragma: no cover - runs in the forked child
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; the child ends with its pipe
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # a reader of the parent's stdout must not wait for this process to exit
    os.close(null)
    _OPEN_PIPE_FDS.clear()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one text at a time: no tokenizer thread pool
    # numpy (imported whole by onnxruntime's binding) starts OpenBLAS with a thread per core, which spin
    # while it loads: half of numpy's import CPU (0.25 -> 0.13 s), taken from the core the scan analyses
    # on. This process never multiplies a matrix with numpy (onnxruntime has its own kernels), so its
    # scores do not change; the environment is this child's only, never the scan's or a library user's.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import gc
    import itertools
    import select

    from malseq.model.infer import SequenceScorer, model_path, model_threads

    requests = os.fdopen(requests_fd, "rb")
    replies = os.fdopen(replies_fd, "wb", buffering=0)
    # The shipped model's files are opened before the parent says which model it wants (unless it has
    # said so already): the imports and the session are most of the wait, and nearly every scan wants it.
    shipped = str(model_path(None))
    early = [requests.readline()] if select.select([requests_fd], [], [], 0)[0] else []
    opened = None
    if not early or early[0] and json.loads(early[0]).get("load") == shipped:
        # The imports and the session make objects that live as long as this process: collecting them
        # as they come only walks them again and again (a few hundredths of a second of the load).
        gc.disable()
        try:
            with contextlib.suppress(Exception):  # a load below reports it
                opened = SequenceScorer.open_files(Path(shipped), model_threads(), parallel=True)
        finally:
            gc.enable()
    scorer = None
    for line in itertools.chain(early, requests):
        if not line:
            break
        message = json.loads(line)
        if "load" in message:
            try:
                scorer = SequenceScorer.load(message["load"], ecosystems=message["ecosystems"],
                                             opened=opened if message["load"] == shipped else None)
                reply: dict[str, Any] = {"ready": True}
            except Exception as exc:  # noqa: BLE001 - the parent loads the model itself and reports it
                reply = {"ready": False, "error": str(exc)}
        elif "score" in message and scorer is not None:
            try:
                reply = {"scores": scorer.score(message["score"])}
            except Exception as exc:  # noqa: BLE001 - the parent scores in-process and reports it
                reply = {"error": str(exc)}
        else:
            reply = {"error": "no model loaded"}
        replies.write(json.dumps(reply).encode("utf-8") + b"\n")
