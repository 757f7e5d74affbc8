"""lrjax.compat.timm against timm's own numbers (tests/golden/timm.json, made by
tests/golden/generate.py): every step, rtol 1e-5 + atol 1e-6 x peak."""

from golden_vectors import class_suite

from lrjax.compat import timm as compat

test_matches_at_every_step, test_every_class_is_covered, test_raises_where_the_original_raises = class_suite(
    compat, "timm")
