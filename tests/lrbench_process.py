"""``lrbench`` as a user runs it, in a fresh process, and the smallest real matrix for tests that run it many
times (two schedules, one seed, one epoch, a 784-16-10 MLP on real Fashion-MNIST)."""
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = "import sys\nfrom bench.cli import main\nmain(sys.argv[1:], prog_name='lrbench')"


def tiny_matrix(folder: Path, name: str, epochs: int = 1) -> Path:
    """``folder/NAME.toml``: SGD at peak 0.1, constant and cosine, seed 0, ``epochs`` epochs, batch 500."""
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        name = "{name}"
        epochs = {epochs}
        seeds = [0]
        batch_size = 500
        [model]
        widths = [784, 16, 10]
        [peak_lr]
        sgd = 0.1
        [schedules]
        constant = "Constant(lr=peak)"
        cosine = "Cosine(lr=peak, decay_steps=total)"
        """))
    return path


def lrbench(*args, fsize: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``lrbench ARGS`` in a fresh process, its output captured; ``fsize``: its file-size limit in bytes
    (``ulimit -f``; a write past it fails with EFBIG instead of killing the process with SIGXFSZ)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-c", CODE, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit if fsize else None)


def start(log: Path, *args) -> subprocess.Popen:
    """``lrbench ARGS`` in the background, its output in ``log``."""
    return subprocess.Popen([sys.executable, "-c", CODE, *map(str, args)], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
