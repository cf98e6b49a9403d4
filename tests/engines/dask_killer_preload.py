"""Worker preload of the test cluster: a run whose directory name says so kills its dask worker.

``wc_kills_always``: the worker process is SIGKILLed (as the out-of-memory killer would) every
time it reads the run. ``wc_kills_once``: only while the file ``KILL_ONCE`` lies in the run
directory; the worker removes it first, so the retry succeeds. The nanny starts a fresh worker
process after each death, which runs this preload again. Never active in the test process itself.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from warmcheck import pipeline

# Preloads can run more than once in a worker process: wrap the original, never the wrapper.
_original = getattr(pipeline, "_read_runs_before_killer", pipeline.read_runs)
pipeline._read_runs_before_killer = _original  # type: ignore[attr-defined]


def _read_runs(spec: Any, *args: Any, **kwargs: Any) -> Any:
    directory = os.path.dirname(spec.files[0][0]) if spec.files else ""
    name = os.path.basename(directory)
    if name.startswith("wc_kills_always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("wc_kills_once"):
        try:
            os.remove(os.path.join(directory, "KILL_ONCE"))
        except FileNotFoundError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return _original(spec, *args, **kwargs)


pipeline.read_runs = _read_runs  # type: ignore[assignment]
