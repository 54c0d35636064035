# Copyright (c) gppf_mm contributors. All rights reserved.
"""The package's import graph, read from the source (ast): no circle
between modules, counting imports inside functions too, and every
subpackage imports alone in a fresh interpreter."""
import ast
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PKG = 'gppf_mm'


def package_modules(root=REPO):
    """``{module name: file}`` of every module of the package."""
    mods = {}
    for folder, _, files in os.walk(osp.join(root, PKG)):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(folder, f)
                name = osp.relpath(path, root)[:-3].replace(os.sep, '.')
                mods[name[:-len('.__init__')] if name.endswith('.__init__')
                     else name] = path
    return mods


def imported(module, is_package, node, mods):
    """The package modules an ``import`` / ``from ... import`` names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = module
        if node.level:
            parts = module.split('.')
            parts = parts if is_package else parts[:-1]
            base = '.'.join(parts[:len(parts) - node.level + 1] +
                            ([node.module] if node.module else []))
        else:
            base = node.module or ''
        names = [f'{base}.{a.name}' if f'{base}.{a.name}' in mods else base
                 for a in node.names]
    out = set()
    for name in names:
        if name.split('.')[0] != PKG:
            continue
        while name not in mods and '.' in name:
            name = name.rsplit('.', 1)[0]
        if name in mods and name != module:
            out.add(name)
    return out


def import_graph(mods):
    graph = {}
    for name, path in mods.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        graph[name] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= imported(name, path.endswith('__init__.py'),
                                        node, mods)
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_finds_a_circle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': set()}
    assert circles(graph) == [['a', 'b', 'c']]
    mods = {'gppf_mm.x': 'x', 'gppf_mm.x.y': 'y', 'gppf_mm.z': 'z'}
    rel = ast.parse('from .y import f\nfrom ..z import g').body
    assert imported('gppf_mm.x', True, rel[0], mods) == {'gppf_mm.x.y'}
    assert imported('gppf_mm.x.y', False, rel[1], mods) == {'gppf_mm.z'}
    absolute = ast.parse('import gppf_mm.x.y.q\nfrom gppf_mm import z').body
    assert imported('gppf_mm.z', False, absolute[0], mods) == {'gppf_mm.x.y'}
    assert imported('gppf_mm.x', True, absolute[1], mods) == {'gppf_mm.z'}


def test_no_import_circle_in_the_package():
    graph = import_graph(package_modules())
    assert len(graph) > 50
    assert 'gppf_mm.utils.scope' in graph['gppf_mm.engine.task_config']
    assert circles(graph) == []


SUBPACKAGES = sorted(
    name for name in os.listdir(osp.join(REPO, PKG))
    if osp.isfile(osp.join(REPO, PKG, name, '__init__.py')))


@pytest.mark.parametrize('group', [SUBPACKAGES[0::2], SUBPACKAGES[1::2]])
def test_every_subpackage_imports_alone(group):
    def run(name):
        return name, subprocess.run(
            [sys.executable, '-c', f'import {PKG}.{name}'], cwd=REPO,
            capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        for name, proc in pool.map(run, group):
            assert proc.returncode == 0, f'{name}: {proc.stderr[-2000:]}'
