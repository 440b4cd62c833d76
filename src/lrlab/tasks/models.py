"""Hand-written batched models: every parameter carries a leading member dimension M.

They implement ``lrlab.tasks.contract.BatchedModel`` with parameters only (no buffers, no
randomness): member m is drawn from a ``torch.Generator`` seeded with ``seeds[m]`` (the same
values whatever the other members are), on the CPU, then moved to the device. Inputs may be
``[M, B, ...]`` or ``[B, ...]`` shared by every member. Gradients are hand-written for the
linear models and by autograd otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lrlab.tasks.contract import Members, Params


def _member_init(seeds: Sequence[int], shapes_fn, device: torch.device) -> Members:
    """Draw each member's parameters from its own CPU generator, stack, move to ``device``."""
    per_member = []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        per_member.append(shapes_fn(gen))
    params = [torch.stack(ts).to(device) for ts in zip(*per_member, strict=True)]
    return Members(params, seeds=tuple(int(s) for s in seeds))


def _zeros_init(seeds: Sequence[int], shapes, dtype, device) -> Members:
    """Members whose parameters all start at zero."""
    M = len(seeds)
    params = [torch.zeros(M, *shape, dtype=dtype, device=device) for shape in shapes]
    return Members(params, seeds=tuple(int(s) for s in seeds))


class ParamsModel:
    """Base of the hand-written models: the whole state is the parameters.

    Subclasses define ``_loss_sum(params, X, y)``, ``_metric_sum(params, X, y)`` and
    ``_loss_and_grad(params, X, y)``; ``penalty`` defaults to zeros.
    """

    def loss_and_grad(self, members: Members, X, y):
        loss, grads = self._loss_and_grad(members.params, X, y)
        return loss, grads, members.buffers

    def loss_sum(self, members: Members, X, y) -> torch.Tensor:
        return self._loss_sum(members.params, X, y)

    def metric_sum(self, members: Members, X, y) -> torch.Tensor:
        return self._metric_sum(members.params, X, y)

    def penalty(self, params: Params) -> torch.Tensor:
        return params[0].new_zeros(params[0].shape[0])


def _lhs(X: torch.Tensor, M: int, example_dims: int) -> torch.Tensor:
    """Inputs as [M, B, ...]: shared inputs [B, ...] are broadcast without copying.

    ``example_dims`` is the number of dimensions of one example (1 for a feature vector,
    0 for a label), so a per-member batch has ``example_dims + 2`` dimensions.
    """
    return X if X.dim() == example_dims + 2 else X.unsqueeze(0).expand(M, *X.shape)


class AutogradModel(ParamsModel):
    """The gradient of the minibatch objective by reverse-mode autodiff.

    The per-member objectives are summed before differentiating; since members share no
    computation, d(sum)/d(params_m) is member m's own gradient.
    """

    def _loss_and_grad(
        self, params: Params, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) for p in params]
            loss = self._loss_sum(leaves, X, y) / X.shape[1] + self.penalty(leaves)
            grads = torch.autograd.grad(loss.sum(), leaves)
        return loss.detach(), list(grads)


class LinearSoftmax(ParamsModel):
    """Multinomial logistic regression: logits = W x + b, cross-entropy loss.

    Parameters ``W`` [M, c, d] (``torch.nn.Linear`` layout) and ``b`` [M, c], initialised at 0.
    Objective f(W, b) = mean_i CE(softmax(W x_i + b), y_i) + (l2 / 2) ||W||_F^2.
    Gradient (hand-written): with P the softmax and Y the one-hot labels of a batch of B rows,
    dW = (P - Y)^T X / B + l2 W, db = sum_i (P - Y)_i / B. Logits are kept class-major
    ([M, c, B]), which makes the batched products cheap for few classes.
    Metric: accuracy (sum of correct predictions).
    """

    def __init__(self, n_features: int, n_classes: int, *, bias: bool = True, l2: float = 0.0):
        self.n_features, self.n_classes, self.bias, self.l2 = n_features, n_classes, bias, l2

    def init(self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> Members:
        c, d = self.n_classes, self.n_features
        return _zeros_init(seeds, [(c, d), (c,)] if self.bias else [(c, d)], dtype, device)

    def _logits_t(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """Class-major logits [M, c, B]."""
        W = params[0]
        Xt = X.transpose(-1, -2)
        if self.bias:
            if X.dim() == 3:
                return torch.baddbmm(params[1].unsqueeze(-1), W, Xt)
            return torch.matmul(W, Xt) + params[1].unsqueeze(-1)
        return torch.bmm(W, Xt) if X.dim() == 3 else torch.matmul(W, Xt)

    def _logp_y(self, Z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(y_i | x_i) [M, B] and the unnormalised exp(Z - max) [M, c, B]."""
        zmax = Z.amax(1, keepdim=True)
        E = (Z - zmax).exp_()
        lse = E.sum(1, keepdim=True).log_().add_(zmax)
        yy = _lhs(y, Z.shape[0], 0).unsqueeze(1)
        return (Z.gather(1, yy) - lse).squeeze(1), E

    def _loss_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self._logp_y(self._logits_t(params, X), y)[0].sum(1)

    def penalty(self, params: Params) -> torch.Tensor:
        W = params[0]
        if self.l2 == 0.0:
            return W.new_zeros(W.shape[0])
        return 0.5 * self.l2 * W.square().sum((1, 2))

    def _metric_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = self._logits_t(params, X).argmax(1)
        return (pred == _lhs(y, pred.shape[0], 0)).sum(1).to(params[0].dtype)

    def _loss_and_grad(
        self, params: Params, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        W = params[0]
        B = X.shape[1]
        logp_y, E = self._logp_y(self._logits_t(params, X), y)
        loss = logp_y.sum(1).div_(-B)
        if self.l2 != 0.0:
            loss = loss + self.penalty(params)
        G = E.div_(E.sum(1, keepdim=True))  # softmax, [M, c, B]
        yy = y.unsqueeze(1)
        G.scatter_add_(1, yy, G.new_full(yy.shape, -1.0))
        G.div_(B)  # (P - Y)^T / B
        gW = torch.bmm(G, X)
        if self.l2 != 0.0:
            gW.add_(W, alpha=self.l2)
        grads = [gW]
        if self.bias:
            grads.append(G.sum(2))
        return loss, grads


class LinearAbs(ParamsModel):
    """Least absolute deviations: f(w) = mean_i |x_i . w - y_i| (no bias, zero init).

    Subgradient (hand-written): X^T sign(X w - y) / B, with sign(0) = 0.
    Metric: mean absolute error (sum of |residuals|).
    """

    def __init__(self, n_features: int):
        self.n_features = n_features

    def init(self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> Members:
        return _zeros_init(seeds, [(self.n_features, 1)], dtype, device)

    def _resid(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = params[0]
        return torch.matmul(_lhs(X, w.shape[0], 1), w).squeeze(-1) - _lhs(y, w.shape[0], 0)

    def _loss_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._resid(params, X, y).abs().sum(1)

    _metric_sum = _loss_sum

    def _loss_and_grad(
        self, params: Params, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        r = self._resid(params, X, y)
        B = X.shape[1]
        loss = r.abs().sum(1) / B
        g = torch.bmm(X.transpose(1, 2), torch.sign(r).unsqueeze(-1)) / B
        return loss, [g]


class MLP(AutogradModel):
    """One-hidden-layer ReLU network: logits = relu(x W1 + b1) W2 + b2, cross-entropy loss.

    Initialised as ``torch.nn.Linear`` does: every weight and bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in)). Objective: mean cross-entropy + (l2 / 2)(||W1||_F^2 + ||W2||_F^2) (the
    biases are not penalised). Metric: accuracy.
    """

    def __init__(self, n_features: int, n_hidden: int, n_classes: int, *, l2: float = 0.0):
        self.sizes = (n_features, n_hidden, n_classes)
        self.l2 = l2

    def penalty(self, params: Params) -> torch.Tensor:
        W1, W2 = params[0], params[2]
        if self.l2 == 0.0:
            return W1.new_zeros(W1.shape[0])
        return 0.5 * self.l2 * (W1.square().sum((1, 2)) + W2.square().sum((1, 2)))

    def init(self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> Members:
        d, h, c = self.sizes

        def draw(gen: torch.Generator) -> Params:
            out = []
            for fan_in, fan_out in ((d, h), (h, c)):
                a = 1.0 / math.sqrt(fan_in)
                out.append((torch.rand(fan_in, fan_out, generator=gen, dtype=dtype) * 2 - 1) * a)
                out.append((torch.rand(fan_out, generator=gen, dtype=dtype) * 2 - 1) * a)
            return out

        return _member_init(seeds, draw, device)

    def _logits(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        W1, b1, W2, b2 = params
        h = torch.relu(torch.matmul(_lhs(X, W1.shape[0], 1), W1) + b1.unsqueeze(1))
        return torch.matmul(h, W2) + b2.unsqueeze(1)

    def _loss_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self._logits(params, X), dim=-1)
        yy = _lhs(y, logp.shape[0], 0).unsqueeze(-1)
        return -logp.gather(-1, yy).squeeze(-1).sum(1)

    def _metric_sum(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = self._logits(params, X).argmax(-1)
        return (pred == _lhs(y, pred.shape[0], 0)).sum(1).to(params[0].dtype)
