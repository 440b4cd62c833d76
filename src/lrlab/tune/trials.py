"""One trial of a study trained by the user's own code: a trial function or a command.

A *trial spec* is the plain dict a study hands to a worker (picklable, JSON-able)::

    {"kind": "function" | "command", "target": "pkg.mod:train" | "python train.py --lr {lr}",
     "number": 7, "params": {"lr": 0.1, "seed": 0, ...}, "schedule_name": "cosine",
     "schedule": Schedule.to_dict(), "steps": 500, "timeout": 600.0 | None,
     "workdir": "/abs/dir" | None, "files": "/tmp/lrlab-trials-xyz"}

``run_trial(spec)`` trains it and returns an *outcome* dict: ``status`` ("ok" or "failed"),
``loss``, ``metric``, ``diverged``, ``diverged_at``, the reported curve (``steps``, ``losses``,
``grad_norms``, ``grad_norms_l1``, one entry per report, NaN where a value was not given),
``error`` (a failed trial's reason: the last lines of its traceback or its stderr) and
``seconds``. It never raises for a failure of the user's code.

- A **trial function** ``train_fn(trial)`` gets a ``Trial`` and returns its final loss (a
  number) or a dict with ``loss`` and optionally ``metric``. It runs in a worker process
  (``lrlab.tune.trial_executors``), so a crash is one failed trial.
- A **command** is a shell command template whose placeholders ``{lr}``, ``{seed}``,
  ``{schedule}`` (the path of the schedule's JSON, read with ``Schedule.load``),
  ``{schedule_name}``, ``{steps}``, ``{trial}`` and any other searched value (e.g.
  ``{weight_decay}``) are filled in, shell-quoted. It reports through ``lrlab.report`` (the
  file named by ``LRLAB_RESULT``) or a final JSON line on stdout.

A run diverged when a reported or returned loss (or gradient norm) is not finite, the rule of
lrlab's batched trainer; ``Trial.should_stop()`` says so as soon as it happens.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shlex
import signal
import string
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

from lrlab.reporting import RESULT_ENV, TRIAL_ENV, parse_stdout, read_reports
from lrlab.schedules import Schedule

KINDS = ("function", "command")
#: Placeholders every command may use; a searched hyperparameter adds its own name.
PLACEHOLDERS = ("lr", "seed", "schedule", "schedule_name", "steps", "trial")
TAIL_LINES = 12
#: Commands running in this process (``kill_running`` stops them when the driver stops).
RUNNING: set[subprocess.Popen] = set()
TAIL_CHARS = 2000


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (at most ``TAIL_CHARS`` characters)."""
    out = "\n".join(text.rstrip().splitlines()[-lines:])
    return out[-TAIL_CHARS:]


def summary(error: str) -> str:
    """A failure reason on one line: the exception of a traceback, or lrlab's own reason
    followed by the last line of the output it quotes."""
    lines = [x.strip() for x in str(error).strip().splitlines() if x.strip()]
    if not lines:
        return "no reason given"
    if lines[0].startswith("Traceback") or len(lines) == 1:
        return lines[-1]
    return f"{lines[0]}: {lines[-1]}"


def command_fields(template: str) -> set[str]:
    """The placeholder names of a command template; ValueError if it does not parse."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"command {template!r}: {exc} (write {{{{ and }}}} for braces)") from None
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(f"command {template!r}: placeholders must be names, got {bad}")
    return names


class Trial:
    """One configuration for ``train_fn(trial)`` to train.

    Attributes: ``number`` (the study's trial number), ``lr`` (the peak learning rate),
    ``seed``, ``schedule`` (an lrlab ``Schedule`` with horizon ``steps``), ``schedule_name``
    (its label in the study), ``steps``, ``params`` (every searched value, ``lr`` included).

    Example::

        def train(trial):
            torch.manual_seed(trial.seed)
            model = make_model()
            opt = torch.optim.SGD(model.parameters(), lr=trial.lr)
            sched = trial.scheduler(opt)
            for step, (x, y) in zip(range(trial.steps), batches()):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step(); sched.step()
                trial.report(step, loss=loss.item())
                if trial.should_stop():
                    break
            return {"loss": evaluate(model), "metric": accuracy(model)}
    """

    def __init__(
        self,
        number: int,
        params: dict[str, Any],
        schedule: Schedule,
        schedule_name: str,
        steps: int,
    ) -> None:
        self.number = int(number)
        self.params = {k: v for k, v in params.items() if k not in ("schedule", "seed")}
        self.lr = float(params["lr"])
        self.seed = int(params["seed"])
        self.schedule = schedule
        self.schedule_name = schedule_name
        self.steps = int(steps)
        self.rows: list[dict[str, float]] = []
        self._stop = False

    def scheduler(self, optimizer: Any) -> Any:
        """A ``lrlab.torchx.ScheduleLR`` driving every param group of ``optimizer`` from
        ``schedule`` with peak ``lr``: optimizer step t uses ``lr * s(t)`` when the loop calls
        ``scheduler.step()`` after each ``optimizer.step()``."""
        from lrlab.torchx import ScheduleLR

        return ScheduleLR(optimizer, self.schedule, peak_lrs=self.lr)

    def report(
        self,
        step: int,
        *,
        loss: Any = None,
        grad_norm: Any = None,
        grad_norm_l1: Any = None,
        metric: Any = None,
    ) -> None:
        """Record values at optimizer step ``step`` (0-indexed): the minibatch ``loss`` for the
        curve, the global l2/l1 gradient norms for a ``refined`` pilot, any ``metric``."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"trial.report: step must be an integer >= 0, got {step!r}")
        row = {"step": step}
        for name, value in (
            ("loss", loss),
            ("grad_norm", grad_norm),
            ("grad_norm_l1", grad_norm_l1),
            ("metric", metric),
        ):
            if value is not None:
                row[name] = float(value)
                if name != "metric" and not math.isfinite(row[name]):
                    self._stop = True
        self.rows.append(row)

    def should_stop(self) -> bool:
        """True once a reported loss or gradient norm was not finite (the run diverged)."""
        return self._stop

    def __repr__(self) -> str:
        return (
            f"Trial(number={self.number}, lr={self.lr:g}, seed={self.seed}, "
            f"schedule={self.schedule_name!r}, steps={self.steps})"
        )


def outcome(
    *,
    loss: float | None = None,
    metric: float | None = None,
    rows: list[dict[str, float]] = (),  # type: ignore[assignment]
    error: str | None = None,
    seconds: float = 0.0,
) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: r["step"])
    nan = math.nan
    steps = [int(r["step"]) for r in rows]
    losses = [r.get("loss", nan) for r in rows]
    norms = [r.get("grad_norm", nan) for r in rows]
    norms1 = [r.get("grad_norm_l1", nan) for r in rows]
    diverged_at = None
    for r in rows:
        vals = [r[k] for k in ("loss", "grad_norm", "grad_norm_l1") if k in r]
        if any(not math.isfinite(v) for v in vals):
            diverged_at = int(r["step"])
            break
    failed = error is not None
    diverged = not failed and (diverged_at is not None or not math.isfinite(loss))
    if diverged and diverged_at is None and steps:
        diverged_at = steps[-1] + 1
    return {
        "status": "failed" if failed else "ok",
        "loss": None if failed or diverged else float(loss),
        "metric": None if metric is None or not math.isfinite(metric) else float(metric),
        "diverged": diverged,
        "diverged_at": diverged_at if diverged else None,
        "steps": steps,
        "losses": losses,
        "grad_norms": norms,
        "grad_norms_l1": norms1,
        "error": error,
        "seconds": float(seconds),
    }


def failed(error: str, seconds: float = 0.0) -> dict[str, Any]:
    """The outcome of a trial that did not produce a result, with its reason."""
    return outcome(error=error, seconds=seconds)


def _result(value: Any) -> tuple[float, float | None]:
    """``(loss, metric)`` from what a trial function returned or a script reported."""
    if isinstance(value, dict):
        if "loss" not in value:
            raise ValueError(f"the result dict has no 'loss' (keys: {sorted(value)})")
        loss, metric = value["loss"], value.get("metric")
    else:
        loss, metric = value, None
    try:
        loss = float(loss)
        metric = None if metric is None else float(metric)
    except (TypeError, ValueError):
        raise ValueError(
            f"a trial must return its final loss (a number) or {{'loss': ..., 'metric': ...}}, "
            f"got {value!r}"
        ) from None
    return loss, metric


def make_trial(spec: dict[str, Any]) -> Trial:
    return Trial(
        spec["number"],
        spec["params"],
        Schedule.from_dict(spec["schedule"]),
        spec["schedule_name"],
        spec["steps"],
    )


def run_function(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the trial function, call it with the spec's ``Trial``; the outcome."""
    from lrlab.tasks.spec import _on_path, load_callable

    t0 = time.perf_counter()
    trial = None
    try:
        fn, folder = load_callable(spec["target"])
        trial = make_trial(spec)
        with _on_path(folder):
            value = fn(trial)
        loss, metric = _result(value)
    except Exception as exc:
        if trial is not None and trial.should_stop():
            # the run diverged and the code raised on the non-finite values: a divergence
            return outcome(loss=math.nan, rows=trial.rows, seconds=time.perf_counter() - t0)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return failed(tail(text), time.perf_counter() - t0)
    return outcome(loss=loss, metric=metric, rows=trial.rows, seconds=time.perf_counter() - t0)


def _values(spec: dict[str, Any], schedule_path: str) -> dict[str, Any]:
    p = spec["params"]
    values = {k: v for k, v in p.items() if k not in ("schedule", "seed")}
    values.update(
        lr=float(p["lr"]),
        seed=int(p["seed"]),
        schedule=schedule_path,
        schedule_name=spec["schedule_name"],
        steps=int(spec["steps"]),
        trial=int(spec["number"]),
    )
    return values


def schedule_file(folder: str, name: str, schedule: dict[str, Any]) -> str:
    """Write the schedule's JSON to ``folder/<name>.json`` (once) and return the path."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = os.path.join(folder, f"{safe}.json")
    if not os.path.exists(path):  # concurrent writers each write a file of their own
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(schedule, fh)
        os.replace(tmp, path)
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the command gets SIGKILL when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_command(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the command of a trial spec in its own process group; the outcome.

    The result is the last ``lrlab.report(loss=...)`` without a step, else the last JSON line
    of stdout with a ``loss``. A non-zero exit, a signal, a timeout or no result is a failed
    trial whose reason carries the tail of stderr (or stdout).
    """
    t0 = time.perf_counter()
    folder = spec["files"]
    n = int(spec["number"])
    sched = schedule_file(folder, spec["schedule_name"], spec["schedule"])
    values = _values(spec, sched)
    quoted = {k: shlex.quote(str(v)) for k, v in values.items()}
    try:
        command = spec["target"].format(**quoted)
    except (KeyError, IndexError, ValueError) as exc:
        return failed(f"command template: cannot fill {exc}")
    result_path = os.path.join(folder, f"trial-{n}.jsonl")
    out_path = os.path.join(folder, f"trial-{n}.out")
    err_path = os.path.join(folder, f"trial-{n}.err")
    for p in (result_path,):
        if os.path.exists(p):
            os.remove(p)
    env = dict(os.environ)
    env[RESULT_ENV] = result_path
    env[TRIAL_ENV] = json.dumps(values)
    timeout = spec.get("timeout")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=spec.get("workdir") or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        RUNNING.add(proc)
        timed_out = False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            RUNNING.discard(proc)
    seconds = time.perf_counter() - t0
    stdout = _read(out_path)
    stderr = _read(err_path)
    for p in (out_path, err_path):
        os.remove(p)
    reported, rows = read_reports(result_path)
    if os.path.exists(result_path):
        os.remove(result_path)
    context = tail(stderr) or tail(stdout)
    if timed_out:
        return failed(_reason(f"timed out after {timeout:g} s", context), seconds)
    if code != 0:
        if code < 0:
            what = f"killed by signal {signal.Signals(-code).name}"
        else:
            what = f"exited with status {code}"
        return failed(_reason(f"command {what}", context), seconds)
    if reported is None:
        reported = parse_stdout(stdout)
    if reported is None:
        return failed(
            _reason(
                "command printed no result: call lrlab.report(loss=...) or print a final JSON "
                'line such as {"loss": 0.5}',
                context,
            ),
            seconds,
        )
    loss, metric = _result(reported)
    return outcome(loss=loss, metric=metric, rows=rows, seconds=seconds)


def _reason(head: str, context: str) -> str:
    return f"{head}\n{context}" if context else head


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        return fh.read().decode("utf-8", errors="replace")


def kill_running() -> None:
    """Kill the process group of every command this process is running (the driver stops)."""
    for proc in list(RUNNING):
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def release_memory() -> None:
    """Return a finished trial's GPU memory: collect garbage (tensors held in reference
    cycles), then empty PyTorch's CUDA cache, so memory does not grow from trial to trial.
    Without CUDA in use only the youngest generation is collected (a full collection of a
    process that imported torch costs tens of milliseconds)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()
    else:
        gc.collect(0)


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one trial spec (function or command); never raises for the user's failures."""
    kind = spec.get("kind")
    if kind == "function":
        try:
            return run_function(spec)
        finally:
            release_memory()
    if kind == "command":
        return run_command(spec)
    raise ValueError(f"trial kind must be one of {KINDS}, got {kind!r}")
