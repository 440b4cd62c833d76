"""Last-iterate bound of SGD for any step-size sequence, and how it reacts to a misspecified peak.

Convex f, iterates x_{t+1} = x_t - eta_t g_t, D = ||x_1 - x*||, E||g_t||^2 <= G_t^2. With the
tail sums S_k = sum_{t=k}^T eta_t and Q_k = sum_{t=k}^T eta_t^2 G_t^2 (t, k = 1..T):

    E f(x_T) - f*  <=  D^2 / (2 S_1)                                    distance term
                     + Q_1 / (2 S_1)                                    gradient term
                     + 1/2 sum_{k=1}^{T-1} eta_k Q_k / (S_{k+1} S_k)     last-iterate term

Indexing: a schedule object is evaluated at t = 0..T-1 and those values are eta_1..eta_T, so
``Linear(T)`` gives eta_1 = 1 and eta_T = 1/T. Every tail sum is a reversed cumulative sum, so
each quantity costs O(T) and keeps full relative precision for T up to 1e6 and beyond.

Step sizes that are 0 at the very end do not move the last iterate: the bound is that of the
sequence with those trailing zeros removed (at least one step size must be > 0).

For a shape s and a peak c (eta = c s) the bound is A/c + B c: the best peak is c* = sqrt(A/B)
and the best bound is 2 sqrt(A B). No torch import here.

Long horizons: a ``Schedule`` with more than ``EXACT_STEPS`` steps (and scalar D and G) is not
evaluated step by step, which would need memory in proportion to T. Its last ``TAIL_STEPS``
steps are evaluated one by one; the steps before them are split into at most ``BINS`` bins
(half of their edges evenly spaced, half geometric from step 1, so bins are narrow where the run
starts), each taken as constant at the value of its middle step. The tail sums of such a
piecewise-constant sequence are exact, the last-iterate sum within a bin is summed in closed
form up to a second-order midpoint term, and restarts are tried at bin starts only. Memory and
time are then O(TAIL_STEPS + BINS) whatever T is. ``tests/test_theory.py`` compares the
subsampled and the step-by-step computation on a reduced grid (bins of about 64 steps) for the
built-in decays: the best bound agrees within 1e-5 relative, the best peak and the plain bounds
within 1e-4; at full size the bins are narrower. A jump inside a bin (a step schedule's
milestone) moves the result by about one bin's share of the sums, ``1 / BINS`` relative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from lrlab._checks import check_array, check_int, check_real
from lrlab.schedules import FromArray, Schedule

__all__ = [
    "BINS",
    "EXACT_STEPS",
    "TAIL_STEPS",
    "BoundTerms",
    "PeakResult",
    "RestartedBound",
    "RhoCurve",
    "OptimalSchedule",
    "step_sizes",
    "last_iterate_bound",
    "best_peak",
    "restarted_bound",
    "misspecified_bound",
    "rho_curve",
    "robustness_exponent",
    "optimal_schedule",
]


#: Schedules longer than this are evaluated on a subsampled grid (module docstring).
EXACT_STEPS = 2**22
#: The last steps of a long schedule, always evaluated one by one.
TAIL_STEPS = 2**20
#: Bins the steps before the tail are grouped into.
BINS = 2**20


# -- inputs -----------------------------------------------------------------------------------
def step_sizes(
    schedule: Schedule | Sequence[float] | np.ndarray, steps: int | None = None
) -> np.ndarray:
    """The step sizes eta_1..eta_T as a float64 array.

    A schedule object is evaluated at t = 0..T-1 (T = ``steps``, else the schedule's horizon);
    an array is taken as is (``steps``, if given, must equal its length). Entries must be
    finite and >= 0, else ``ValueError``.

    Example: ``step_sizes(Linear(4))`` -> ``[1., .75, .5, .25]``.
    """
    if isinstance(schedule, Schedule):
        if steps is None and schedule.horizon is None:
            raise ValueError(f"steps must be given for {schedule!r}, which has no horizon")
        n = check_int("steps", schedule.horizon if steps is None else steps, lo=1)
        eta = check_array("schedule values", schedule(np.arange(n)), nonneg=True)
    else:
        eta = check_array("step sizes", schedule, nonneg=True)
        if steps is not None and check_int("steps", steps, lo=1) != eta.size:
            raise ValueError(f"steps must equal the number of step sizes {eta.size}, got {steps}")
    return eta


def _per_step(name: str, value: float | Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """A scalar or a length-n array of finite values >= 0, broadcast to length n."""
    if np.ndim(value) == 0:
        return np.full(n, check_real(name, value, 0.0))
    arr = check_array(name, value, nonneg=True)
    if arr.size != n:
        raise ValueError(
            f"{name} must be a scalar or have one entry per step ({n}), got {arr.size}"
        )
    return arr


@dataclass(frozen=True)
class _Seq:
    """Step sizes to bound: one entry per step (``w`` None), or per bin of ``w`` equal steps
    starting at step ``start`` (a long schedule, see the module docstring)."""

    eta: np.ndarray
    d: np.ndarray
    g: np.ndarray
    w: np.ndarray | None = None
    start: np.ndarray | None = None

    def step(self, i: int) -> int:
        """The 0-indexed step where entry ``i`` begins."""
        return i if self.start is None else int(self.start[i])


def _prepare(schedule, D, G, steps) -> _Seq:
    if (
        isinstance(schedule, Schedule)
        and np.ndim(D) == 0
        and np.ndim(G) == 0
        and (steps if steps is not None else schedule.horizon or 0) > EXACT_STEPS
    ):
        return _prepare_long(schedule, D, G, steps)
    eta = step_sizes(schedule, steps)
    n = eta.size
    d = _per_step("D", D, n)
    g = _per_step("G", G, n)
    pos = np.flatnonzero(eta > 0)
    if pos.size == 0:
        raise ValueError("step sizes must not all be 0")
    last = int(pos[-1]) + 1
    return _Seq(eta[:last], d[:last], g[:last])


def _prepare_long(schedule: Schedule, D, G, steps) -> _Seq:
    """A long schedule on the grid of the module docstring: bins, then the tail step by step."""
    n = check_int("steps", schedule.horizon if steps is None else steps, lo=1)
    d0, g0 = check_real("D", D, 0.0), check_real("G", G, 0.0)
    head = n - TAIL_STEPS
    # half the bins evenly spaced, half geometric from step 1 (narrow where the run starts)
    even = np.linspace(0.0, float(head), BINS // 2 + 1)
    geometric = np.concatenate([[0.0], np.geomspace(1.0, float(head), BINS // 2)])
    edges = np.unique(np.round(np.concatenate([even, geometric])).astype(np.int64))
    width = np.diff(edges)
    mid = edges[:-1] + (width - 1) // 2
    tail = np.arange(head, n, dtype=np.int64)
    eta = check_array(
        "schedule values",
        schedule(np.concatenate([mid, tail]).astype(np.float64)),
        nonneg=True,
    )
    pos = np.flatnonzero(eta[width.size :] > 0)
    if pos.size == 0:
        raise ValueError(
            f"the schedule is 0 over its last {TAIL_STEPS} steps: give the steps where it ends"
        )
    last = width.size + int(pos[-1]) + 1
    w = np.concatenate([width, np.ones(TAIL_STEPS, dtype=np.int64)]).astype(np.float64)
    start = np.concatenate([edges[:-1], tail])
    return _Seq(eta[:last], np.full(last, d0), np.full(last, g0), w[:last], start[:last])


# -- the bound --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoundTerms:
    """The three terms of the last-iterate bound and their sum ``total``."""

    distance: float
    gradient: float
    last_iterate: float
    total: float


def _tails(eta: np.ndarray, g: np.ndarray, w: np.ndarray | None = None):
    """Reversed cumulative sums S_k, Q_k and r_k = eta_k Q_k / (S_{k+1} S_k), r_T = 0.

    Requires eta_T > 0 (guaranteed by ``_prepare``), so no denominator is 0. With ``w`` (bin
    widths), entry k stands for w_k equal steps: S_k and Q_k are the sums from the bin's first
    step, and r_k the sum of the bin's last-iterate terms, Q_next w e / (S_next S) + q w (w+1)
    e / (2 (S_next + (w-1) e / 2) S) with q = (e G)^2 (exact for w = 1).
    """
    if w is None:
        S = np.cumsum(eta[::-1])[::-1]
        Q = np.cumsum(((eta * g) ** 2)[::-1])[::-1]
        r = np.zeros_like(eta)
        r[:-1] = eta[:-1] * Q[:-1] / (S[1:] * S[:-1])
        return S, Q, r
    q = (eta * g) ** 2
    S = np.cumsum((w * eta)[::-1])[::-1]
    Q = np.cumsum((w * q)[::-1])[::-1]
    r = np.zeros_like(eta)
    e, ww, Sn, Qn, Sk = eta[:-1], w[:-1], S[1:], Q[1:], S[:-1]
    r[:-1] = Qn * ww * e / (Sn * Sk) + q[:-1] * ww * (ww + 1.0) * e / (
        2.0 * (Sn + 0.5 * (ww - 1.0) * e) * Sk
    )
    return S, Q, r


def _coefficients(eta: np.ndarray, d: np.ndarray, g: np.ndarray, w: np.ndarray | None = None):
    """a_tau, b_tau (tau = 1..T) with bound(c, restarted at tau) = a_tau / c + b_tau c.

    a_tau = D_tau^2 / (2 S_tau),  b_tau = Q_tau / (2 S_tau) + 1/2 sum_{k=tau}^{T-1} r_k,
    all for the shape ``eta`` (c = 1). Index 0 is the plain bound. ``w``: see ``_tails``.
    """
    S, Q, r = _tails(eta, g, w)
    R = np.cumsum(r[::-1])[::-1]
    return d**2 / (2.0 * S), Q / (2.0 * S) + 0.5 * R


def last_iterate_bound(
    schedule: Schedule | Sequence[float] | np.ndarray,
    D: float | Sequence[float] | np.ndarray = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    steps: int | None = None,
    peak: float = 1.0,
) -> BoundTerms:
    """The last-iterate bound for step sizes eta_t = peak * s_t (see the module docstring).

    ``schedule``: a ``Schedule`` (evaluated at t = 0..T-1) or an array of T step sizes.
    ``D``: scalar, or one value per step (the bound uses D_1 = D[0]). ``G``: scalar or G_1..G_T.
    Cost O(T).

    Example: a constant step eta for T steps gives
    ``D^2/(2 eta T) + eta G^2/2 + (eta G^2/2) H_{T-1}`` (H_n the n-th harmonic number):
    ``last_iterate_bound(np.full(10, 0.1)).total`` -> ``0.5 + 0.05 + 0.05 * H_9``.
    """
    c = check_real("peak", peak, 0.0, lo_open=True)
    seq = _prepare(schedule, D, G, steps)
    S, Q, r = _tails(c * seq.eta, seq.g, seq.w)
    d = seq.d
    dist = float(d[0] ** 2 / (2.0 * S[0]))
    grad = float(Q[0] / (2.0 * S[0]))
    last = float(0.5 * r.sum())
    return BoundTerms(distance=dist, gradient=grad, last_iterate=last, total=dist + grad + last)


@dataclass(frozen=True)
class PeakResult:
    """Best peak ``peak`` = sqrt(A/B) and best bound ``bound`` = 2 sqrt(A B) for a shape."""

    peak: float
    bound: float
    A: float
    B: float


def best_peak(
    schedule: Schedule | Sequence[float] | np.ndarray,
    D: float | Sequence[float] | np.ndarray = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    steps: int | None = None,
) -> PeakResult:
    """Minimise the bound A/c + B c over the peak c of eta = c s.

    A = D_1^2 / (2 S_1) and B = Q_1 / (2 S_1) + 1/2 sum_k s_k Q_k / (S_{k+1} S_k), with the
    sums taken over the shape s (c = 1). Returns c* = sqrt(A/B) and 2 sqrt(A B).
    Needs D_1 > 0 and G_t > 0 for some step with s_t > 0.

    Example: ``best_peak(Linear(1000)).bound`` is about ``2 / sqrt(1000)`` (D = G = 1).
    """
    seq = _prepare(schedule, D, G, steps)
    a, b = _coefficients(seq.eta, seq.d, seq.g, seq.w)
    A, B = float(a[0]), float(b[0])
    if A <= 0:
        raise ValueError("D must be > 0 at the first step to define a best peak")
    if B <= 0:
        raise ValueError("G must be > 0 at some step with a positive step size")
    return PeakResult(peak=math.sqrt(A / B), bound=2.0 * math.sqrt(A * B), A=A, B=B)


@dataclass(frozen=True)
class RestartedBound:
    """The tail-restarted bound ``bound``, its restart step (0-indexed), and the plain bound."""

    bound: float
    restart_step: int
    plain: float


def _restarted(a: np.ndarray, b: np.ndarray, c: float, seq: _Seq | None = None) -> RestartedBound:
    vals = a / c + b * c
    i = int(np.argmin(vals))
    step = i if seq is None else seq.step(i)
    return RestartedBound(bound=float(vals[i]), restart_step=step, plain=float(vals[0]))


def restarted_bound(
    schedule: Schedule | Sequence[float] | np.ndarray,
    D: float | Sequence[float] | np.ndarray = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    steps: int | None = None,
    peak: float = 1.0,
) -> RestartedBound:
    """The bounded-domain bound: restart the last-iterate bound on every tail, keep the best.

    If ||x_tau - x*|| <= D_tau for every tau (a bounded domain), the iterates from x_tau on are
    SGD on the sub-sequence eta_tau..eta_T, so the module's bound applies to it with D_tau in
    place of D. Its tail sums are the tail sums S_k, Q_k of the whole sequence (k >= tau), hence

        B_tau = D_tau^2 / (2 S_tau) + Q_tau / (2 S_tau)
                + 1/2 sum_{k=tau}^{T-1} eta_k Q_k / (S_{k+1} S_k),

        restarted bound = min_{tau = 1..T} B_tau   (tau = 1 is the plain bound).

    The last sum over k >= tau is itself a reversed cumulative sum, so every B_tau costs O(T)
    in all. ``restart_step`` is the minimising tau as a 0-indexed step (tau - 1).

    Example: for a constant step the best tail is the whole run unless the step is too large:
    ``restarted_bound(Constant(), steps=100, peak=10.0).restart_step > 0``.
    """
    c = check_real("peak", peak, 0.0, lo_open=True)
    seq = _prepare(schedule, D, G, steps)
    a, b = _coefficients(seq.eta, seq.d, seq.g, seq.w)
    return _restarted(a, b, c, seq)


def _check_rho(name: str, rho: float) -> float:
    return check_real(name, rho, 0.0, lo_open=True)


def misspecified_bound(
    schedule: Schedule | Sequence[float] | np.ndarray,
    rho: float,
    D: float | Sequence[float] | np.ndarray = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    steps: int | None = None,
    side: str = "over",
    restarted: bool = False,
) -> float:
    """The bound at a misspecified peak: rho c* (``side="over"``) or c* / rho (``"under"``).

    c* is the best peak of the plain bound (``best_peak``). ``restarted=True`` gives the
    tail-restarted bounded-domain form (``restarted_bound``), else the plain bound A/c + B c.

    Example: the plain bound of any shape at rho c* is ``(rho + 1/rho)/2`` times its best.
    """
    r = _check_rho("rho", rho)
    if side not in ("over", "under"):
        raise ValueError(f"side must be 'over' or 'under', got {side!r}")
    seq = _prepare(schedule, D, G, steps)
    a, b = _coefficients(seq.eta, seq.d, seq.g, seq.w)
    c = _peak_from(a, b) * (r if side == "over" else 1.0 / r)
    res = _restarted(a, b, c)
    return res.bound if restarted else res.plain


def _peak_from(a: np.ndarray, b: np.ndarray) -> float:
    if a[0] <= 0:
        raise ValueError("D must be > 0 at the first step to define a best peak")
    if b[0] <= 0:
        raise ValueError("G must be > 0 at some step with a positive step size")
    return math.sqrt(a[0] / b[0])


def robustness_exponent(
    rho: Sequence[float] | np.ndarray, bounds: Sequence[float] | np.ndarray
) -> float:
    """Least-squares slope of log(bound) against log(rho): bound ~ rho ** exponent.

    Needs at least two distinct rho > 0 and bounds > 0 of the same length.

    Example: ``robustness_exponent([2, 4, 8], [3, 6, 12])`` -> ``1.0``.
    """
    x = check_array("rho", rho, min_len=2)
    y = check_array("bounds", bounds, min_len=2)
    if x.size != y.size:
        raise ValueError(f"rho and bounds must have the same length, got {x.size} and {y.size}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("rho and bounds must be > 0")
    lx, ly = np.log(x), np.log(y)
    lx0 = lx - lx.mean()
    den = float(lx0 @ lx0)
    if den == 0.0:
        raise ValueError("rho must hold at least two distinct values")
    return float(lx0 @ (ly - ly.mean()) / den)


@dataclass(frozen=True)
class RhoCurve:
    """Bounds at rho c* (``over_*``) and c* / rho (``under_*``) for each rho.

    ``*_plain`` is the bound of the module docstring, ``*_restarted`` the tail-restarted
    bounded-domain form; ``restart_over`` the 0-indexed restart step chosen at rho c*.
    """

    rho: np.ndarray
    best_peak: float
    best_bound: float
    over_plain: np.ndarray
    under_plain: np.ndarray
    over_restarted: np.ndarray
    under_restarted: np.ndarray
    restart_over: np.ndarray

    def exponent(self, side: str = "over", restarted: bool = True) -> float:
        """Fitted exponent of ``bound ~ rho ** e`` for one side and form."""
        if side not in ("over", "under"):
            raise ValueError(f"side must be 'over' or 'under', got {side!r}")
        form = "restarted" if restarted else "plain"
        return robustness_exponent(self.rho, getattr(self, f"{side}_{form}"))


def rho_curve(
    schedule: Schedule | Sequence[float] | np.ndarray,
    rho: Sequence[float] | np.ndarray = (2.0, 4.0, 8.0, 16.0),
    D: float | Sequence[float] | np.ndarray = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    steps: int | None = None,
) -> RhoCurve:
    """Plain and tail-restarted bounds at rho c* and c* / rho for every rho; O(T) per rho.

    Example: ``rho_curve(Linear(10**5), [2, 4, 8, 16, 32, 64]).exponent()`` is about 1/3.
    """
    rhos = check_array("rho", rho)
    if (rhos <= 0).any():
        raise ValueError("rho must be > 0")
    seq = _prepare(schedule, D, G, steps)
    a, b = _coefficients(seq.eta, seq.d, seq.g, seq.w)
    c_star = _peak_from(a, b)
    over = [_restarted(a, b, c_star * r, seq) for r in rhos]
    under = [_restarted(a, b, c_star / r, seq) for r in rhos]
    return RhoCurve(
        rho=rhos,
        best_peak=c_star,
        best_bound=2.0 * math.sqrt(float(a[0] * b[0])),
        over_plain=np.array([o.plain for o in over]),
        under_plain=np.array([u.plain for u in under]),
        over_restarted=np.array([o.bound for o in over]),
        under_restarted=np.array([u.bound for u in under]),
        restart_over=np.array([o.restart_step for o in over], dtype=np.int64),
    )


# -- the schedule that minimises the bound -----------------------------------------------------
@dataclass(frozen=True)
class OptimalSchedule:
    """Step sizes minimising the plain bound, with the bound reached and the solver's status.

    ``shape`` is ``eta / max(eta)`` as a ``FromArray`` with one knot per step, so
    ``shape.values(T)`` reproduces it exactly; ``peak`` = max(eta).
    """

    eta: np.ndarray
    bound: float
    peak: float
    shape: FromArray
    iterations: int
    converged: bool


def _bound_and_grad(eta: np.ndarray, D: float, g: np.ndarray) -> tuple[float, np.ndarray]:
    """Plain bound and its gradient in eta, both O(T).

    With u_k = eta_k/(S_{k+1} S_k), v_k = r_k/S_{k+1}, w_k = r_k/S_k (k < T; 0 at k = T) and
    their prefix sums U, V, W, the last-iterate sum R = sum_k r_k has
    dR/deta_j = Q_j/(S_{j+1} S_j) [j < T] + 2 eta_j G_j^2 U_j - V_{j-1} - W_j.
    """
    S, Q, r = _tails(eta, g)
    g2 = g**2
    u = np.zeros_like(eta)
    v = np.zeros_like(eta)
    w = np.zeros_like(eta)
    q = np.zeros_like(eta)
    u[:-1] = eta[:-1] / (S[1:] * S[:-1])
    v[:-1] = r[:-1] / S[1:]
    w[:-1] = r[:-1] / S[:-1]
    q[:-1] = Q[:-1] / (S[1:] * S[:-1])
    V = np.cumsum(v)
    dR = q + 2.0 * eta * g2 * np.cumsum(u) - np.concatenate(([0.0], V[:-1])) - np.cumsum(w)
    S0 = S[0]
    f = D**2 / (2.0 * S0) + Q[0] / (2.0 * S0) + 0.5 * r.sum()
    grad = -(D**2 + Q[0]) / (2.0 * S0**2) + eta * g2 / S0 + 0.5 * dR
    return float(f), grad


def optimal_schedule(
    steps: int,
    D: float = 1.0,
    G: float | Sequence[float] | np.ndarray = 1.0,
    *,
    max_iter: int = 5000,
    tol: float = 1e-12,
) -> OptimalSchedule:
    """Minimise the plain bound over step sizes eta_1..eta_T > 0 numerically.

    Parametrised as eta = exp(theta), solved by L-BFGS with the analytic O(T) gradient, started
    from linear decay at its best peak. Each iteration costs O(T); T <= 20000 is accepted
    (T = 20000 solves in under a second). ``converged`` reports the solver's status.

    Example: ``optimal_schedule(200).bound <= best_peak(Linear(200)).bound``.
    """
    n = check_int("steps", steps, lo=2, hi=20000)
    d = check_real("D", D, 0.0, lo_open=True)
    g = _per_step("G", G, n)
    if not (g > 0).any():
        raise ValueError("G must be > 0 at some step")
    check_int("max_iter", max_iter, lo=1)
    check_real("tol", tol, 0.0, lo_open=True)
    start = 1.0 - np.arange(n) / n
    a, b = _coefficients(start, np.full(n, d), g)
    theta0 = np.log(start * _peak_from(a, b))
    scale, _ = _bound_and_grad(np.exp(theta0), d, g)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = np.exp(theta)
        f, grad = _bound_and_grad(eta, d, g)
        return f / scale, grad * eta / scale

    res = minimize(
        fun, theta0, jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": tol, "gtol": tol * 1e-2},
    )
    eta = np.exp(res.x)
    peak = float(eta.max())
    return OptimalSchedule(
        eta=eta,
        bound=float(res.fun * scale),
        peak=peak,
        shape=FromArray(tuple(eta / peak), steps=n - 1),
        iterations=int(res.nit),
        converged=bool(res.success),
    )
