"""A tiny character-level transformer language model on the Python standard library's source.

Corpus: the ``*.py`` files directly inside ``sysconfig.get_paths()["stdlib"]``, in sorted name
order, concatenated and cut at ``max_bytes`` bytes (nothing is downloaded; the text depends on
the installed Python version). Bytes map to 97 symbols: newline -> 0, printable ASCII 32..126 ->
1..95, anything else -> 96. The corpus is cut into non-overlapping windows of ``context + 1``
symbols (input = first ``context``, target = the next symbol at each position); the first 90 %
of the windows are the training split, the rest the test split.

Model (pre-LayerNorm GPT, parameters stacked over members [M, ...]): token + learned position
embeddings, ``layers`` blocks of causal multi-head self-attention and a ReLU feed-forward layer,
a final LayerNorm, output logits tied to the token embedding. Loss: mean next-symbol
cross-entropy over a window (nats per symbol); metric: the same on the test split.
"""

from __future__ import annotations

import math
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lrlab._checks import check_int
from lrlab.tasks.base import Task, register
from lrlab.tasks.contract import Members, Params
from lrlab.tasks.models import AutogradModel, _lhs, _member_init

VOCAB = 97


def stdlib_corpus(max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes of the sorted top-level stdlib ``*.py`` files, concatenated."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = bytearray()
    for path in sorted(root.glob("*.py")):
        if len(out) >= max_bytes:
            break
        out += path.read_bytes()
    if not out:
        raise RuntimeError(f"no Python source files found in {root}")
    return bytes(out[:max_bytes])


def encode(text: bytes) -> np.ndarray:
    """Bytes -> symbols 0..96 (newline 0, printable ASCII 1..95, other 96)."""
    b = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    sym = np.full(b.shape, VOCAB - 1, dtype=np.int64)
    printable = (b >= 32) & (b <= 126)
    sym[printable] = b[printable] - 31
    sym[b == 10] = 0
    return sym


def _layer_norm(h: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mu = h.mean(-1, keepdim=True)
    var = (h - mu).square().mean(-1, keepdim=True)
    shape = (g.shape[0],) + (1,) * (h.dim() - 2) + (g.shape[-1],)
    return (h - mu) / torch.sqrt(var + 1e-5) * g.view(shape) + b.view(shape)


class CharTransformer(AutogradModel):
    """Batched causal transformer; see the module docstring. Weights ~ N(0, 0.02^2) at init."""

    def __init__(self, context: int, d_model: int, heads: int, layers: int, d_ff: int):
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        self.L, self.D, self.H, self.layers, self.F = context, d_model, heads, layers, d_ff
        self.row_cost = context * (VOCAB + 4 * d_model + d_ff + context)

    def init(self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> Members:
        D, F, L = self.D, self.F, self.L

        def draw(gen: torch.Generator) -> Params:
            def normal(*shape: int) -> torch.Tensor:
                return torch.randn(*shape, generator=gen, dtype=dtype) * 0.02

            out = [normal(VOCAB, D), normal(L, D)]
            for _ in range(self.layers):
                out += [torch.ones(D, dtype=dtype), torch.zeros(D, dtype=dtype)]
                out += [normal(D, 3 * D), normal(D, D)]
                out += [torch.ones(D, dtype=dtype), torch.zeros(D, dtype=dtype)]
                out += [normal(D, F), torch.zeros(F, dtype=dtype)]
                out += [normal(F, D), torch.zeros(D, dtype=dtype)]
            out += [torch.ones(D, dtype=dtype), torch.zeros(D, dtype=dtype)]
            return out

        return _member_init(seeds, draw, device)

    def _logp(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [M, B, L, V] of the next symbol."""
        emb, pos = params[0], params[1]
        M = emb.shape[0]
        X = _lhs(X, M, 1)
        B, L = X.shape[1], X.shape[2]
        H, dh = self.H, self.D // self.H
        flat = (X + torch.arange(M, device=X.device).view(M, 1, 1) * VOCAB).reshape(-1)
        h = emb.reshape(M * VOCAB, self.D).index_select(0, flat).view(M, B, L, self.D)
        h = h + pos[:, :L].unsqueeze(1)
        causal = torch.ones(L, L, dtype=torch.bool, device=X.device).triu(1)
        k = 2
        for _ in range(self.layers):
            g1, b1, wqkv, wo, g2, b2, w1, c1, w2, c2 = params[k : k + 10]
            k += 10
            qkv = torch.matmul(_layer_norm(h, g1, b1), wqkv.unsqueeze(1))
            q, kk, v = qkv.view(M, B, L, 3, H, dh).permute(3, 0, 1, 4, 2, 5)  # [M, B, H, L, dh]
            att = torch.matmul(q, kk.transpose(-1, -2)) / math.sqrt(dh)
            att = torch.softmax(att.masked_fill(causal, float("-inf")), dim=-1)
            a = torch.matmul(att, v).permute(0, 1, 3, 2, 4).reshape(M, B, L, self.D)
            h = h + torch.matmul(a, wo.unsqueeze(1))
            z = torch.matmul(_layer_norm(h, g2, b2), w1.unsqueeze(1)) + c1.view(M, 1, 1, -1)
            h = h + torch.matmul(torch.relu(z), w2.unsqueeze(1)) + c2.view(M, 1, 1, -1)
        h = _layer_norm(h, params[k], params[k + 1])
        return torch.log_softmax(torch.matmul(h, emb.transpose(1, 2).unsqueeze(1)), dim=-1)

    def _loss_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = self._logp(params, X)
        yy = _lhs(y, logp.shape[0], 1).unsqueeze(-1)
        return -logp.gather(-1, yy).squeeze(-1).mean(-1).sum(1)

    _metric_sum = _loss_sum


@register("stdlib_charlm")
def stdlib_charlm(
    max_bytes: int = 120_000,
    context: int = 32,
    d_model: int = 32,
    heads: int = 2,
    layers: int = 2,
    d_ff: int = 64,
) -> Task:
    max_bytes = check_int("max_bytes", max_bytes, lo=1000)
    context = check_int("context", context, lo=2)
    d_model = check_int("d_model", d_model, lo=2)
    heads = check_int("heads", heads, lo=1)
    layers = check_int("layers", layers, lo=1)
    d_ff = check_int("d_ff", d_ff, lo=1)
    sym = encode(stdlib_corpus(max_bytes))
    n = (len(sym) - 1) // context
    if n < 10:
        raise ValueError(f"max_bytes={max_bytes} gives only {n} windows; need at least 10")
    starts = np.arange(n) * context
    X = sym[starts[:, None] + np.arange(context)]
    y = sym[starts[:, None] + np.arange(1, context + 1)]
    n_train = int(0.9 * n)
    as_t = torch.from_numpy
    return Task(
        name="stdlib_charlm",
        description=(
            f"character-level transformer LM ({layers} layers, d={d_model}, {heads} heads, "
            f"context {context}) on {len(sym)} bytes of this Python's standard library source; "
            "loss and metric in nats per character"
        ),
        model=CharTransformer(context, d_model, heads, layers, d_ff),
        X_train=as_t(X[:n_train].copy()),
        y_train=as_t(y[:n_train].copy()),
        X_test=as_t(X[n_train:].copy()),
        y_test=as_t(y[n_train:].copy()),
        default_steps=300,
        default_batch_size=32,
        metric_name="test_loss",
        higher_is_better=False,
        default_lr=3e-3,
        default_optimizer="adam",
    )
