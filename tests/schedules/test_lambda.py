"""lrjax.Lambda (a traced function of the step, numeric keywords as leaves) and lrjax.Table (rates per step)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import lrjax


def decay_fn(t, decay, floor=0.0):
    """Module-level, so a Lambda of it has a 'module:qualname' spec."""
    return floor + (1.0 - floor) * decay**t


def _stack(*scheds):
    return jax.tree.map(lambda *x: jnp.stack(x), *scheds)


# ---------------------------------------------------------------------------------------------- Lambda

def test_lambda_values_are_scale_times_fn():
    s = lrjax.Lambda(decay_fn, scale=0.1, decay=0.5, floor=0.2)
    t = np.arange(6)
    np.testing.assert_allclose(s(t), 0.1 * (0.2 + 0.8 * 0.5**t), rtol=1e-6)
    assert s(3).dtype == jnp.float32 and s(3).shape == ()
    assert s.kwargs.keys() == {"decay", "floor"} and float(s.kwargs["floor"]) == pytest.approx(0.2)
    assert float(s.horizon) == 0.0


def test_lambda_jit_equals_eager_and_one_trace_for_new_keyword_values():
    traces = []

    @jax.jit
    def f(s, t):
        traces.append(1)
        return s(t)

    t = jnp.arange(50)
    a = lrjax.Lambda(decay_fn, 1.0, decay=0.9, floor=0.0)
    b = a.replace(decay=0.5, scale=0.3)
    c = a.replace(floor=0.5)
    for s in (a, b, c):
        np.testing.assert_allclose(f(s, t), s(np.arange(50)), rtol=1e-6, atol=1e-7)
    assert len(traces) == 1
    np.testing.assert_allclose(b(t), 0.3 * 0.5 ** np.arange(50), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(c(t), 0.5 + 0.5 * 0.9 ** np.arange(50.0), rtol=1e-5)


def test_lambda_vmap_over_keywords_and_scale():
    decays = [0.5, 0.9, 0.99]
    batch = _stack(*[lrjax.Lambda(decay_fn, 2.0, decay=d) for d in decays])
    got = jax.vmap(lambda s: s(jnp.arange(10)))(batch)
    np.testing.assert_allclose(got, 2.0 * np.asarray(decays)[:, None] ** np.arange(10), rtol=1e-5)
    # gradient with respect to a keyword: d/d decay of decay^t = t decay^(t-1)
    g = jax.grad(lambda s: s(3))(lrjax.Lambda(decay_fn, decay=0.5))
    assert float(g.params[0]) == pytest.approx(3 * 0.25, rel=1e-6)


def test_lambda_built_inside_jit_with_traced_keywords():
    f = jax.jit(lambda d: lrjax.Lambda(lambda t, decay: decay**t, decay=d)(3))
    assert float(f(0.5)) == pytest.approx(0.125)
    g = jax.jit(lambda d: lrjax.Lambda(decay_fn, decay=0.5).replace(decay=d)(2))
    assert float(g(0.25)) == pytest.approx(0.0625)


def test_lambda_scalar_only_function_is_vectorised():
    # lax.cond takes one scalar predicate: works because the step is given one at a time
    s = lrjax.Lambda(lambda t: jax.lax.cond(t < 3, lambda: 1.0, lambda: 0.25))
    np.testing.assert_array_equal(s(np.arange(5)), [1.0, 1.0, 1.0, 0.25, 0.25])
    s = lrjax.Lambda(lambda t: 0.5)  # a constant function broadcasts like the step
    assert s(np.arange(4)).shape == (4,)


def test_lambda_spec_of_an_importable_function_is_its_reference():
    s = lrjax.Lambda(decay_fn, 0.1, decay=0.9, floor=0.01)
    spec = lrjax.to_spec(s)
    assert spec["name"] == "lambda" and spec["fn"].endswith(":decay_fn")
    assert spec["param_names"] == ["decay", "floor"] and spec["params"] == [0.9, 0.01]
    back = lrjax.from_spec(yaml.safe_load(yaml.safe_dump(spec)))
    assert back.function is decay_fn
    np.testing.assert_array_equal(back(np.arange(20)), s(np.arange(20)))
    # the reference may be given directly
    assert lrjax.Lambda("jax.numpy:cos")(0) == 1.0


def test_lambda_spec_of_a_lambda_holds_the_function_itself():
    fn = lambda t: 0.5 * t  # noqa: E731 - not importable by name
    s = lrjax.Lambda(fn)
    spec = lrjax.to_spec(s)
    assert spec["fn"] is fn  # works within the process ...
    assert float(lrjax.from_spec(spec)(4)) == 2.0
    with pytest.raises(yaml.representer.RepresenterError):  # ... but is not a YAML document
        yaml.safe_dump(spec)


def test_lambda_refuses_python_code_jax_cannot_trace():
    with pytest.raises(TypeError, match=r"Lambda: fn must be .* jax\.numpy.*TracerBoolConversionError.*Table\.tabulate"):
        lrjax.Lambda(lambda t: 1.0 if t < 5 else 0.1)
    with pytest.raises(TypeError, match="ConcretizationTypeError"):
        lrjax.Lambda(lambda t: math.cos(t))
    with pytest.raises(TypeError, match=r"shape \(2,\)"):
        lrjax.Lambda(lambda t: jnp.stack([t, t]))


def test_lambda_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match="Lambda: fn must be a function"):
        lrjax.Lambda(0.1)
    with pytest.raises(ValueError, match=r"Lambda: fn='nowhere:fn' cannot be imported"):
        lrjax.Lambda("nowhere:fn")
    with pytest.raises(TypeError, match="Lambda: decay must be a number, got decay='fast'"):
        lrjax.Lambda(decay_fn, decay="fast")
    with pytest.raises(ValueError, match="Lambda: decay must be a finite number"):
        lrjax.Lambda(decay_fn, decay=float("nan"))
    with pytest.raises(ValueError, match="'scale' is reserved"):
        lrjax.Lambda(decay_fn, 1.0, param_names=["scale"], params=[1.0])
    with pytest.raises(TypeError, match="not both"):
        lrjax.Lambda(decay_fn, decay=0.5, param_names=["decay"], params=[0.5])
    with pytest.raises(ValueError, match="Lambda: params must be 1 numbers"):
        lrjax.Lambda(decay_fn, param_names=["decay"], params=[0.5, 0.1])
    with pytest.raises(ValueError, match="Lambda: scale must be >= 0"):
        lrjax.Lambda(decay_fn, -1.0, decay=0.5)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'decay'"):
        lrjax.Lambda(decay_fn)  # tracing calls fn without its keyword


# ---------------------------------------------------------------------------------------------- Table

def test_table_reads_one_value_per_step_and_holds_the_last():
    s = lrjax.Table([1.0, 0.5, 0.25], scale=0.1)
    np.testing.assert_allclose(s([0, 1, 2, 3, 100, 2**40]), [0.1, 0.05, 0.025, 0.025, 0.025, 0.025], rtol=1e-6)
    np.testing.assert_allclose(s(np.array([1.7, -3.0])), [0.05, 0.1], rtol=1e-6)  # floor; below 0: the first entry
    assert float(s.horizon) == 2.0
    assert lrjax.to_spec(s) == {"name": "table", "values": [1, 0.5, 0.25], "scale": 0.1}


def test_table_tabulates_python_code_on_the_host():
    fn = lambda t: 1.0 if t < 3 else 0.5 * (1 + math.cos(math.pi * (t - 3) / 5))  # noqa: E731
    s = lrjax.Table.tabulate(fn, 8, scale=0.2)
    want = [0.2 * fn(t) for t in range(9)] + [0.2 * fn(8)] * 3
    np.testing.assert_allclose(s(np.arange(12)), want, rtol=1e-6, atol=1e-8)


def test_table_jit_vmap_and_gradient():
    a, b = lrjax.Table([1.0, 0.5, 0.0], 1.0), lrjax.Table([0.2, 0.4, 0.6], 2.0)
    f = jax.jit(jax.vmap(lambda s: s(jnp.arange(4))))
    np.testing.assert_allclose(f(_stack(a, b)), [[1, 0.5, 0, 0], [0.4, 0.8, 1.2, 1.2]], rtol=1e-6)
    g = jax.grad(lambda s: s(5))(b)  # the held last entry
    np.testing.assert_allclose(g.values, [0, 0, 2.0])
    assert float(g.scale) == pytest.approx(0.6)


def test_table_errors():
    with pytest.raises(ValueError, match="Table: values must be a non-empty list"):
        lrjax.Table([])
    with pytest.raises(ValueError, match="Table: values must be >= 0"):
        lrjax.Table([0.1, -0.1])
    with pytest.raises(ValueError, match="Table: values must be finite"):
        lrjax.Table([0.1, float("inf")])
    with pytest.raises(ValueError, match="Table.tabulate: total_steps must be an integer >= 0"):
        lrjax.Table.tabulate(lambda t: 1.0, -1)
    with pytest.raises(ValueError, match=r"fn\(2\) must be a finite number >= 0"):
        lrjax.Table.tabulate(lambda t: 1.0 - t, 3)
    with pytest.raises(TypeError, match=r"fn\(0\) must return a number"):
        lrjax.Table.tabulate(lambda t: "x", 3)
