"""Dense layers of any JAX model, found from its jaxpr, with their inputs a and output gradients g.

K-FAC needs, per dense layer s = W a (+ b), the layer inputs a and the gradients g = ∂ℓ/∂s of
the layer outputs.  Nothing is tagged by the user: :func:`find_dense_layers` traces
``model_fn(params, inputs)`` with ``jax.make_jaxpr`` (the parameter leaves as inputs) and reads
the jaxpr, recursing into ``jit``/``closed_call``/``custom_jvp_call``/``custom_vjp_call``/
``checkpoint`` sub-jaxprs.  A dense layer is a ``dot_general`` without batch dimensions, one
contracting dimension on each side, one operand being a 2-D parameter leaf (possibly through
``convert_element_type``/``copy``/``transpose``) and the other no parameter; its bias is a 1-D
parameter leaf (possibly reshaped/broadcast) added to the product (possibly through
``transpose``/``convert_element_type``/``copy``), when the product has no other use.  This
covers flax.linen ``Dense`` (x @ kernel + bias), equinox ``Linear`` under ``jax.vmap``
(weight @ x + bias) and plain pytrees (x @ W + b).  A leaf counts as a layer's kernel (bias)
only when that ``dot_general`` (``add``) is its one use: a weight shared between products, a
weight inside ``scan``/``while``/``cond``, a convolution kernel, a norm's scale or an
embedding table is no dense layer and is left to the caller's fallback.

:func:`capture_dense_layers` then re-evaluates the jaxpr with a zero perturbation e added to each
layer's product s, so that one forward pass and one VJP give a (rows × d_in, leading dims
flattened) and g = ∂/∂e (rows × d_out) per layer together with the parameter gradients.

References:
  The JAX "custom interpreters" pattern (jax.readthedocs.io, "Writing custom Jaxpr
  interpreters"); Martens and Grosse, "Optimizing neural networks with Kronecker-factored
  approximate curvature", ICML 2015 (a, g and the homogeneous coordinate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

__all__ = ["DenseLayer", "LayerCapture", "find_dense_layers", "capture_dense_layers"]

# Primitives whose output is the same parameter, reordered or cast (provenance follows them).
_SAME = ("convert_element_type", "copy", "copy_p")
# Primitives whose one sub-jaxpr takes the eqn's operands one for one (inlined when a layer is in).
_CALLS = ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
          "custom_vjp_call_jaxpr", "checkpoint", "remat", "remat2")


class DenseLayer(NamedTuple):
    """A dense layer s = W a (+ b) found in a model.

    Attributes:
      kernel: index of W in ``jax.tree.leaves(params)``.
      bias: index of b, or None.
      in_axis: the axis of the kernel leaf contracted with a: 0 for ``x @ W`` (flax, plain
        pytrees, W of shape (d_in, d_out)), 1 for ``W @ x`` (equinox, W of shape (d_out, d_in)).
      path: where W sits in ``params`` (``jax.tree_util.keystr``).
    """

    kernel: int
    bias: int | None
    in_axis: int
    path: str


class LayerCapture(NamedTuple):
    """What one forward pass of :func:`capture_dense_layers` gives.

    Attributes:
      outputs: ``model_fn(params, inputs)``.
      layers: the dense layers found (:class:`DenseLayer`).
      activations: per layer a, (rows, d_in): the layer inputs, leading dims flattened.
      vjp: cotangent of ``outputs`` ↦ (parameter gradients, a pytree like ``params``; per
        layer g = ∂/∂s, (rows, d_out), rows in the order of ``activations``).
    """

    outputs: Any
    layers: tuple
    activations: tuple
    vjp: Callable


class _Prov(NamedTuple):
    """A var that is parameter leaf ``leaf`` viewed: ``dims[k]`` is the leaf axis that var axis
    k shows, None for an axis of size 1 or a broadcast one."""

    leaf: int
    dims: tuple


class _Site(NamedTuple):
    """Where layer ``layer`` sits: the dot_general at ``path`` (eqn indices through calls);
    a is operand ``x_operand`` contracted along ``x_axis``; d_out is output axis ``out_axis``."""

    path: tuple
    x_operand: int
    x_axis: int
    out_axis: int


def _sub_jaxpr(eqn):
    """(jaxpr, consts) of a call-like eqn whose sub-jaxpr takes its operands one for one."""
    if eqn.primitive.name not in _CALLS:
        return None
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(name)
        if isinstance(j, ClosedJaxpr):
            j, consts = j.jaxpr, list(j.consts)
        elif isinstance(j, Jaxpr):
            consts = []
        else:
            continue
        if len(j.invars) == len(eqn.invars) and len(j.outvars) == len(eqn.outvars):
            return j, consts
    return None


class _Analysis:
    """One pass over the jaxpr: parameter provenance, uses per leaf, dot and bias candidates."""

    def __init__(self, shapes):
        self.shapes = shapes  # leaf shapes
        self.uses = [0] * len(shapes)
        self.dots: list = []  # (kernel leaf, in_axis, _Site)
        self.bias_of: dict = {}  # site path -> bias leaf

    def run(self, jaxpr, prov: dict, prefix: tuple) -> None:
        users: dict = {}
        for i, eqn in enumerate(jaxpr.eqns):
            for v in eqn.invars:
                if not isinstance(v, Literal):
                    users.setdefault(v, []).append(i)
        outvars = {v for v in jaxpr.outvars if not isinstance(v, Literal)}
        for v in outvars:
            if v in prov:
                self.uses[prov[v].leaf] += 1
        pending = []  # bias searches: (site, product var, its d_out axis, d_out)
        for i, eqn in enumerate(jaxpr.eqns):
            ins = [None if isinstance(v, Literal) else prov.get(v) for v in eqn.invars]
            if not any(p is not None for p in ins):
                continue
            name = eqn.primitive.name
            view = self._view(eqn, ins[0]) if len(ins) == 1 else None
            if view is not None:
                prov[eqn.outvars[0]] = view
                continue
            sub = _sub_jaxpr(eqn)
            if sub is not None:
                self.run(sub[0], {iv: p for iv, p in zip(sub[0].invars, ins, strict=True)
                                  if p is not None}, prefix + (i,))
                continue
            for p in ins:
                if p is not None:
                    self.uses[p.leaf] += 1
            if name == "dot_general":
                found = self._dot(eqn, ins, prefix + (i,))
                if found is not None:
                    pending.append(found)
        for site, s, axis, d_out in pending:  # now that the scope's provenance is known
            self._bias(jaxpr, s, axis, d_out, site, users, outvars, prov)

    def _view(self, eqn, p):
        name, shape = eqn.primitive.name, eqn.outvars[0].aval.shape
        if name in _SAME:
            return p
        if name == "transpose":
            return _Prov(p.leaf, tuple(p.dims[k] for k in eqn.params["permutation"]))
        leaf_shape = self.shapes[p.leaf]
        if len(leaf_shape) != 1:  # reshapes and broadcasts are followed for biases only
            return None
        d = leaf_shape[0]
        if name == "broadcast_in_dim":
            dims = [None] * len(shape)
            for k, b in enumerate(eqn.params["broadcast_dimensions"]):
                dims[b] = p.dims[k]
            return _Prov(p.leaf, tuple(dims))
        if name == "reshape":
            where = [k for k, s in enumerate(shape) if s == d]
            if d == 1 or len(where) == 1:
                k = where[-1] if where else len(shape) - 1
                return _Prov(p.leaf, tuple(0 if j == k else None for j in range(len(shape))))
        return None

    def _dot(self, eqn, ins, path):
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        if lb or rb or len(lc) != 1 or len(rc) != 1:
            return
        kinds = [p is not None for p in ins]
        if kinds.count(True) != 1:
            return
        w = kinds.index(True)
        p = ins[w]
        if len(self.shapes[p.leaf]) != 2 or sorted(p.dims) != [0, 1] \
                or eqn.invars[w].aval.shape != tuple(self.shapes[p.leaf][k] for k in p.dims):
            return
        w_axis = (lc, rc)[w][0]
        x = 1 - w
        x_ndim = len(eqn.invars[x].aval.shape)
        # dot_general's output: lhs free dims, then rhs free dims.
        out_axis = x_ndim - 1 if w == 1 else 0
        site = _Site(path, x, (lc, rc)[x][0], out_axis)
        self.dots.append((p.leaf, p.dims[w_axis], site))
        d_out = self.shapes[p.leaf][p.dims[1 - w_axis]]
        return site, eqn.outvars[0], out_axis, d_out

    def _bias(self, jaxpr, s, axis, d_out, site, users, outvars, prov):
        """The bias added to the product s (through same-value views), if s has no other use."""
        while s not in outvars and len(users.get(s, ())) == 1:
            eqn = jaxpr.eqns[users[s][0]]
            name = eqn.primitive.name
            if name in _SAME:
                s = eqn.outvars[0]
            elif name == "transpose":
                axis = list(eqn.params["permutation"]).index(axis)
                s = eqn.outvars[0]
            elif name == "add":
                other = eqn.invars[1] if eqn.invars[0] is s else eqn.invars[0]
                p = None if isinstance(other, Literal) else prov.get(other)
                if (p is not None and self.shapes[p.leaf] == (d_out,)
                        and eqn.outvars[0].aval.shape == s.aval.shape
                        and len(p.dims) == len(s.aval.shape)
                        and (d_out == 1 or p.dims[axis] == 0)):
                    self.bias_of[site.path] = p.leaf
                return
            else:
                return


def _trace(model_fn: Callable, params, inputs):
    leaves, treedef = jax.tree.flatten(params)
    closed, out_shape = jax.make_jaxpr(
        lambda lv, x: model_fn(jax.tree.unflatten(treedef, lv), x), return_shape=True)(
        leaves, inputs)
    return closed, leaves, treedef, jax.tree.structure(out_shape)


def _analyse(closed, params) -> tuple[tuple, tuple]:
    paths_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    shapes = [tuple(jnp.shape(x)) for _, x in paths_leaves]
    an = _Analysis(shapes)
    an.run(closed.jaxpr, {v: _Prov(k, tuple(range(len(shapes[k]))))
                          for k, v in enumerate(closed.jaxpr.invars[:len(shapes)])}, ())
    layers, sites = [], []
    for leaf, in_axis, site in an.dots:
        if an.uses[leaf] != 1:
            continue
        bias = an.bias_of.get(site.path)
        if bias is not None and an.uses[bias] != 1:
            bias = None
        layers.append(DenseLayer(leaf, bias, int(in_axis),
                                 jax.tree_util.keystr(paths_leaves[leaf][0])))
        sites.append(site)
    return tuple(layers), tuple(sites)


def find_dense_layers(model_fn: Callable, params, inputs) -> tuple[DenseLayer, ...]:
    """The dense layers of ``model_fn(params, inputs)`` (module docstring), in forward order.

    Only shapes are used (a ``jax.make_jaxpr`` trace): works on tracers inside ``jit``.

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs``.
      params: the parameter pytree (dict, flax, equinox).
      inputs: an input batch (or ``jax.ShapeDtypeStruct`` s).

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.curvature import find_dense_layers
      >>> params = {"W": jnp.ones((3, 2)), "b": jnp.zeros(2), "scale": jnp.ones(2)}
      >>> model = lambda p, x: (x @ p["W"] + p["b"]) * p["scale"]
      >>> find_dense_layers(model, params, jnp.ones((5, 3)))
      (DenseLayer(kernel=0, bias=1, in_axis=0, path="['W']"),)
    """
    closed = _trace(model_fn, params, inputs)[0]
    return _analyse(closed, params)[0]


def _evaluate(jaxpr, consts, args, sites: dict, inside: set, perts, acts, prefix=()):
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x
    for i, eqn in enumerate(jaxpr.eqns):
        path = prefix + (i,)
        invals = [read(v) for v in eqn.invars]
        if path in inside:
            sub, sub_consts = _sub_jaxpr(eqn)
            outs = _evaluate(sub, sub_consts, invals, sites, inside, perts, acts, path)
        else:
            outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outs = [outs]
            if path in sites:
                k, site = sites[path]
                acts[k] = invals[site.x_operand]
                outs = [outs[0] + perts[k]]
        for v, x in zip(eqn.outvars, outs, strict=True):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _rows(x, axis):
    return jnp.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])


def capture_dense_layers(model_fn: Callable, params, inputs) -> LayerCapture:
    """One forward pass of ``model_fn`` recording a and preparing g for every dense layer.

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs``.
      params: the parameter pytree.
      inputs: the input batch.

    Returns:
      A :class:`LayerCapture`; ``vjp(cotangent)`` gives the parameter gradients of
      ⟨cotangent, outputs⟩ and g per layer in one backward pass.
    """
    closed, leaves, treedef, out_tree = _trace(model_fn, params, inputs)
    layers, site_list = _analyse(closed, params)
    sites = {s.path: (k, s) for k, s in enumerate(site_list)}
    inside = {s.path[:j] for s in site_list for j in range(1, len(s.path))}
    in_leaves = jax.tree.leaves(inputs)

    def product(path):  # the aval of the dot_general at path
        jaxpr = closed.jaxpr
        for i in path[:-1]:
            jaxpr = _sub_jaxpr(jaxpr.eqns[i])[0]
        return jaxpr.eqns[path[-1]].outvars[0].aval

    zeros = tuple(jnp.zeros(a.shape, a.dtype) for a in map(product, (s.path for s in site_list)))

    def forward(lv, perts):
        acts = [None] * len(site_list)
        outs = _evaluate(closed.jaxpr, closed.consts, list(lv) + in_leaves, sites, inside,
                         perts, acts)
        return outs, tuple(acts)

    outs, pullback, acts = jax.vjp(forward, leaves, zeros, has_aux=True)

    def vjp(cotangent):
        grads, gs = pullback(jax.tree.leaves(cotangent))
        return (jax.tree.unflatten(treedef, grads),
                tuple(_rows(g, s.out_axis) for g, s in zip(gs, site_list, strict=True)))

    return LayerCapture(jax.tree.unflatten(out_tree, outs), layers,
                        tuple(_rows(a, s.x_axis) for a, s in zip(acts, site_list, strict=True)),
                        vjp)
