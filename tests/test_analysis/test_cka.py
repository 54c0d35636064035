# Copyright (c) gppf_mm contributors. All rights reserved.
"""Minibatch linear CKA with the unbiased HSIC estimator."""
import itertools
import math
from fractions import Fraction

import pytest
import torch

from gppf_mm.analysis import (
    MinibatchCKA,
    gram_linear,
    hsic_unbiased,
    hsic_unbiased_matrix,
    linear_cka,
)


def hsic_u_statistic(K, L):
    """HSIC_1 from its U-statistic definition (Song et al. 2012), with
    exact rational arithmetic: the mean over ordered 4-tuples of distinct
    indices (i, j, q, r) of K_ij L_ij + K_ij L_qr - 2 K_ij L_iq."""
    n = len(K)
    total, count = Fraction(0), 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += (K[i][j] * L[i][j] + K[i][j] * L[q][r] -
                  2 * K[i][j] * L[i][q])
        count += 1
    assert count == n * (n - 1) * (n - 2) * (n - 3)
    return total / count


def gram_exact(rows):
    """X X^T with integer entries."""
    return [[Fraction(sum(a * b for a, b in zip(x, y))) for y in rows]
            for x in rows]


X_INT = [[1, 0], [2, 1], [0, 3], [-1, 2], [3, -2]]
Y_INT = [[2], [-1], [1], [0], [4]]


def test_hsic_matches_u_statistic_on_integers():
    K, L = gram_exact(X_INT), gram_exact(Y_INT)
    got = hsic_unbiased(gram_linear(torch.tensor(X_INT)),
                        gram_linear(torch.tensor(Y_INT)))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(float(hsic_u_statistic(K, L)),
                                       abs=1e-12)
    # the CKA of the tiny case, every HSIC from the U-statistic
    expected = hsic_u_statistic(K, L) / math.sqrt(
        hsic_u_statistic(K, K) * hsic_u_statistic(L, L))
    cka = linear_cka(torch.tensor(X_INT), torch.tensor(Y_INT))
    assert float(cka) == pytest.approx(float(expected), abs=1e-12)


def test_hsic_random_grams_and_batched_matrix():
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(6, p, generator=g, dtype=torch.float64)
          for p in (3, 5, 2)]
    ks = [x @ x.t() for x in xs]
    lists = [k.tolist() for k in ks]
    for a in range(3):
        for b in range(3):
            exact = hsic_u_statistic(
                [[Fraction(v) for v in row] for row in lists[a]],
                [[Fraction(v) for v in row] for row in lists[b]])
            assert float(hsic_unbiased(ks[a], ks[b])) == pytest.approx(
                float(exact), abs=1e-12)
    matrix = hsic_unbiased_matrix(ks, ks[:2])
    assert matrix.shape == (3, 2)
    for a in range(3):
        for b in range(2):
            assert float(matrix[a, b]) == pytest.approx(
                float(hsic_unbiased(ks[a], ks[b])), abs=1e-12)
    with pytest.raises(ValueError, match='n > 3'):
        hsic_unbiased(torch.eye(3), torch.eye(3))


def test_cka_identity_orthogonal_and_scale_invariance():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(32, 10, generator=g, dtype=torch.float64)
    Y = torch.randn(32, 7, generator=g, dtype=torch.float64) + X[:, :7]
    assert abs(float(linear_cka(X, X)) - 1.0) < 1e-10
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g,
                                       dtype=torch.float64))
    base = float(linear_cka(X, Y))
    assert 0.0 < base < 1.0
    assert float(linear_cka(X @ Q, Y)) == pytest.approx(base, abs=1e-10)
    assert float(linear_cka(3.7 * X, Y)) == pytest.approx(base, abs=1e-10)
    assert abs(float(linear_cka(X @ Q, 3.7 * X)) - 1.0) < 1e-10
    # features of any shape are flattened per example
    assert float(linear_cka(X.reshape(32, 2, 5), Y)) == pytest.approx(
        base, abs=1e-12)


def test_minibatch_accumulation_over_two_batches():
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(8, 5, generator=g, dtype=torch.float64),
                torch.randn(8, 3, generator=g, dtype=torch.float64))
               for _ in range(2)]
    cka = MinibatchCKA()
    for x, y in batches:
        cka.update([x], [y])
    assert cka.num_batches == 2
    kl = kk = ll = 0.0
    for x, y in batches:
        K, L = x @ x.t(), y @ y.t()
        kl += float(hsic_unbiased(K, L))
        kk += float(hsic_unbiased(K, K))
        ll += float(hsic_unbiased(L, L))
    expected = kl / math.sqrt(kk * ll)
    assert float(cka.compute()[0, 0]) == pytest.approx(expected, abs=1e-12)
    # the sum of HSICs, not the mean of per-batch CKAs
    per_batch = sum(float(linear_cka(x, y)) for x, y in batches) / 2
    assert abs(per_batch - expected) > 1e-6


def test_matrix_shapes_and_within_model():
    g = torch.Generator().manual_seed(3)
    cross, within = MinibatchCKA(), MinibatchCKA()
    for _ in range(2):
        xs = [torch.randn(10, 4 + i, generator=g) for i in range(3)]
        ys = [torch.randn(10, 2, 3, generator=g) for _ in range(4)]
        cross.update(xs, ys)
        within.update(xs)
    assert cross.compute().shape == (3, 4)
    assert cross.compute().dtype == torch.float64
    w = within.compute()
    assert w.shape == (3, 3)
    torch.testing.assert_close(w, w.t())
    torch.testing.assert_close(w.diagonal(), torch.ones(3,
                                                        dtype=torch.float64))
    with pytest.raises(ValueError, match='layers'):
        cross.update(xs, ys[:2])
    with pytest.raises(RuntimeError, match='update'):
        MinibatchCKA().compute()
