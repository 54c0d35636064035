# Copyright (c) gppf_mm contributors. All rights reserved.
"""Minibatch linear CKA (the paper's Appendix A).

Centered kernel alignment with the unbiased HSIC estimator, accumulated
over minibatches as in Nguyen, Raghu & Kornblith (2021), "Do wide and deep
networks learn the same things?"::

    CKA_ij = sum_b HSIC_1(K_i^b, L_j^b)
             / sqrt(sum_b HSIC_1(K_i^b, K_i^b) * sum_b HSIC_1(L_j^b, L_j^b))

where ``K_i^b = X_i^b X_i^b^T`` is the linear Gram matrix of layer ``i``'s
features of minibatch ``b`` (flattened to ``(n, p)``). Only the ``n x n``
Gram matrices are needed, so the feature widths may differ between
minibatches (e.g. padded detection batches).
"""
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn

Grams = List[torch.Tensor]


def gram_linear(x: torch.Tensor) -> torch.Tensor:
    """The linear Gram matrix ``X X^T`` (float64) of ``x`` of shape
    ``(n, ...)``, flattened to ``(n, p)``."""
    x = torch.as_tensor(x).detach()
    if x.dim() < 2:
        raise ValueError(f'features must have shape (n, ...), got '
                         f'{tuple(x.shape)}')
    x = x.reshape(x.shape[0], -1).double()
    return x @ x.t()


def _check_grams(K: torch.Tensor, L: torch.Tensor) -> int:
    if K.dim() < 2 or K.shape[-1] != K.shape[-2] or \
            K.shape[-2:] != L.shape[-2:]:
        raise ValueError(f'need n x n Gram matrices of the same n, got '
                         f'{tuple(K.shape)} and {tuple(L.shape)}')
    n = K.shape[-1]
    if n <= 3:
        raise ValueError(f'the unbiased HSIC needs n > 3 examples, got {n}')
    return n


def _zero_diagonal(K: torch.Tensor) -> torch.Tensor:
    K = K.double().clone()
    K.diagonal(dim1=-2, dim2=-1).zero_()
    return K


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator HSIC_1 (Song et al. 2012) of two ``n x n``
    Gram matrices (n > 3), in float64.

    With ``K~``, ``L~`` the Gram matrices with zero diagonals::

        HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
                  - 2 / (n-2) 1^T K~ L~ 1] / (n (n-3))
    """
    K, L = torch.as_tensor(K), torch.as_tensor(L)
    n = _check_grams(K, L)
    K, L = _zero_diagonal(K), _zero_diagonal(L)
    ones = K.new_ones(n)
    result = torch.trace(K @ L)
    result = result + K.sum() * L.sum() / ((n - 1) * (n - 2))
    result = result - 2.0 / (n - 2) * (ones @ K @ L @ ones)
    return result / (n * (n - 3))


def hsic_unbiased_matrix(Ks: Sequence[torch.Tensor],
                         Ls: Sequence[torch.Tensor]) -> torch.Tensor:
    """``HSIC_1(Ks[i], Ls[j])`` for every pair, shape ``(len(Ks),
    len(Ls))``, float64 (one batched evaluation of :func:`hsic_unbiased`).
    """
    K = _zero_diagonal(torch.stack([torch.as_tensor(k) for k in Ks]))
    L = _zero_diagonal(torch.stack([torch.as_tensor(m) for m in Ls]))
    n = _check_grams(K, L)
    trace = torch.einsum('pab,qba->pq', K, L)
    sums = torch.outer(K.sum((1, 2)), L.sum((1, 2))) / ((n - 1) * (n - 2))
    # 1^T K L 1 = (column sums of K) . (row sums of L)
    cross = K.sum(1) @ L.sum(2).t()
    return (trace + sums - 2.0 / (n - 2) * cross) / (n * (n - 3))


class MinibatchCKA:
    """Accumulate minibatch linear CKA between two lists of layers.

    Call :meth:`update` once per minibatch with the features of every
    layer of the first model (``xs``) and of the second (``ys``; omit it,
    or pass the same list, for CKA within one model), then :meth:`compute`.

    Example:
        >>> cka = MinibatchCKA()
        >>> for _ in range(2):
        ...     x = torch.randn(16, 8)
        ...     cka.update([x, x.relu()], [x * 2.0])
        >>> cka.compute().shape
        torch.Size([2, 1])
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.num_batches = 0
        self.hsic_xy: Optional[torch.Tensor] = None  # (P, Q)
        self.hsic_xx: Optional[torch.Tensor] = None  # (P, )
        self.hsic_yy: Optional[torch.Tensor] = None  # (Q, )

    def update(self, xs: Sequence[torch.Tensor],
               ys: Optional[Sequence[torch.Tensor]] = None) -> None:
        """Add one minibatch: ``xs`` / ``ys`` hold one ``(n, ...)`` feature
        tensor per layer, all of the same ``n`` examples."""
        ks = [gram_linear(x) for x in xs]
        same = ys is None or ys is xs
        self.update_grams(ks, None if same else [gram_linear(y) for y in ys])

    def update_grams(self, ks: Sequence[torch.Tensor],
                     ls: Optional[Sequence[torch.Tensor]] = None) -> None:
        """:meth:`update` with the linear Gram matrices already computed
        (``ls=None``: within-model CKA, ``ls = ks``)."""
        if not ks:
            raise ValueError('update needs at least one layer')
        xy = hsic_unbiased_matrix(ks, ks if ls is None else ls)
        if ls is None:
            xx = xy.diagonal().clone()
            yy = xx.clone()
        else:
            xx = torch.stack([hsic_unbiased(k, k) for k in ks])
            yy = torch.stack([hsic_unbiased(m, m) for m in ls])
        if self.hsic_xy is None:
            self.hsic_xy, self.hsic_xx, self.hsic_yy = xy, xx, yy
        else:
            if xy.shape != self.hsic_xy.shape:
                raise ValueError(
                    f'this minibatch has {tuple(xy.shape)} layers, the '
                    f'earlier ones {tuple(self.hsic_xy.shape)}')
            self.hsic_xy = self.hsic_xy + xy
            self.hsic_xx = self.hsic_xx + xx
            self.hsic_yy = self.hsic_yy + yy
        self.num_batches += 1

    def compute(self) -> torch.Tensor:
        """The ``(len(xs), len(ys))`` CKA matrix (float64)."""
        if self.hsic_xy is None:
            raise RuntimeError('no minibatch was added (call update first)')
        return self.hsic_xy / torch.sqrt(
            torch.outer(self.hsic_xx, self.hsic_yy))


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Linear CKA (unbiased HSIC) of two feature matrices of the same
    ``n`` examples (one minibatch); a float64 scalar."""
    K, L = gram_linear(X), gram_linear(Y)
    return hsic_unbiased(K, L) / torch.sqrt(
        hsic_unbiased(K, K) * hsic_unbiased(L, L))


# ----------------------------------------------------- feature collection
def _as_tensor(out) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f'a lego layer returned {type(out).__name__}, '
                        'not a tensor')
    return out


@contextmanager
def record_layer_grams(modules: Sequence[nn.Module]) -> Iterator[List]:
    """Forward hooks that keep the linear Gram matrix of every module's
    output (a tensor, or the first tensor of a tuple) while the context is
    open; yields a list that holds, per module, the last one computed."""
    grams: List[Optional[torch.Tensor]] = [None] * len(modules)

    def hook(index: int) -> Callable:

        def fn(module, inputs, output):
            grams[index] = gram_linear(_as_tensor(output))

        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        yield grams
    finally:
        for h in handles:
            h.remove()


def lego_layers(backbone: nn.Module) -> List[nn.Module]:
    """The lego layers of a lego backbone, in order."""
    names = getattr(backbone, 'lego_layer_names', None)
    if not names:
        raise ValueError(f'{type(backbone).__name__} is not a lego backbone '
                         '(no lego_layer_names)')
    return [backbone.get_submodule(name) for name in names]


def layer_display_names(backbone: nn.Module) -> List[str]:
    names = getattr(backbone, 'lego_layer_display_names', None)
    return list(names()) if names else list(backbone.lego_layer_names)


@torch.no_grad()
def collect_layer_grams(backbone: nn.Module,
                        forward: Callable[[torch.Tensor], object],
                        batches: Iterable[torch.Tensor]) -> List[Grams]:
    """Run ``forward`` on every batch and return, per batch, the linear
    Gram matrix of every lego layer's output of ``backbone``.

    Args:
        backbone: the lego backbone whose layers are hooked.
        forward: runs the model on one input batch (e.g.
            ``lambda x: model.extract_feat(x, task)``).
        batches: preprocessed input tensors ``(n, C, H, W)``.
    """
    modules = lego_layers(backbone)
    out = []
    for inputs in batches:
        with record_layer_grams(modules) as grams:
            forward(inputs)
        missing = [i for i, g in enumerate(grams) if g is None]
        if missing:
            raise RuntimeError(f'lego layers {missing} did not run')
        out.append(list(grams))
    return out


def cka_matrices(grams1: Sequence[Grams],
                 grams2: Optional[Sequence[Grams]] = None) -> dict:
    """Minibatch CKA from per-batch Gram matrices (as
    :func:`collect_layer_grams` returns): ``within1`` and, with
    ``grams2`` (same batches), ``within2`` and ``cross`` (rows: layers of
    the first model, columns: of the second). Batches of n <= 3 examples
    are skipped."""
    if grams2 is not None and len(grams2) != len(grams1):
        raise ValueError(f'{len(grams1)} and {len(grams2)} batches')
    within1, within2, cross = MinibatchCKA(), MinibatchCKA(), MinibatchCKA()
    for b, ks in enumerate(grams1):
        if ks[0].shape[0] <= 3:
            continue
        within1.update_grams(ks)
        if grams2 is not None:
            within2.update_grams(grams2[b])
            cross.update_grams(ks, grams2[b])
    if within1.num_batches == 0:
        raise ValueError('no batch with more than 3 examples')
    out = dict(within1=within1.compute())
    if grams2 is not None:
        out.update(within2=within2.compute(), cross=cross.compute())
    return out
