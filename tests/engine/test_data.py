"""Data loaders for each format, their errors, and the seeded iterator."""

import gzip
import os
import pickle

import numpy as np
import pytest

from lrjax.engine import BatchIterator, DataError, load_dataset


def test_digits_is_bundled_and_split_by_seed():
    ds = load_dataset("digits", seed=0, test_fraction=0.2)
    assert ds.input_shape == (8, 8, 1) and ds.num_classes == 10
    assert ds.num_train + len(ds.y_test) == 1797 and len(ds.y_test) == 359
    assert abs(float(ds.x_train.mean())) < 1e-5  # standardised with train statistics
    again = load_dataset("digits", seed=0, test_fraction=0.2)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    assert not np.array_equal(ds.y_test, load_dataset("digits", seed=1).y_test)


def test_npz(npz_file):
    ds = load_dataset(str(npz_file), normalize=False)
    assert ds.input_shape == (6,) and ds.num_classes == 2 and ds.num_train == 80
    assert ds.y_train.dtype == np.int32 and ds.x_train.dtype == np.float32


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(idx_dir, gz):
    d = idx_dir(gz)
    ds = load_dataset(str(d), normalize=False)
    assert ds.input_shape == (10, 10, 1) and ds.num_train == 96 and len(ds.y_test) == 40
    assert ds.x_train.max() == 1.0  # uint8 scaled to [0, 1]


def test_cifar_directory(cifar_dir):
    ds = load_dataset(str(cifar_dir), normalize=False, trust_pickle=True)  # not the official files: opted in
    assert ds.input_shape == (32, 32, 3) and ds.num_train == 48 and len(ds.y_test) == 24
    with open(cifar_dir / "test_batch", "rb") as fh:
        raw = pickle.load(fh)[b"data"]
    # channel-first rows become NHWC
    np.testing.assert_allclose(ds.x_test[0, 0, 1, 2], raw[0][2 * 1024 + 1] / 255.0)


def test_missing_and_malformed_files_name_the_path(tmp_path, npz_file, idx_dir):
    with pytest.raises(DataError, match=r"nope.npz: no such file or directory \(expected 'digits', 'mnist1d', a .npz"):
        load_dataset(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"bad.npz: a .npz dataset needs arrays x_train, y_train and optionally "
                                        r"x_test with y_test .*; missing y_train \(found x_train\)"):
        load_dataset(str(bad))
    np.savez(bad, x_train=np.zeros((3, 2)), y_train=np.zeros(3, int), x_test=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"bad.npz: .*; missing y_test \(found x_train, y_train, x_test\)"):
        load_dataset(str(bad))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk.npz: cannot read as a .npz"):
        load_dataset(str(junk))
    txt = tmp_path / "data.csv"
    txt.write_text("1,2")
    with pytest.raises(DataError, match=r"data.csv: a data file must be a .npz"):
        load_dataset(str(txt))
    d = idx_dir(True)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte"):
        load_dataset(str(d))
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x01\x00\x00\x00\x28abc")  # says 40 labels, holds 3
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: IDX header says shape \(40,\)"):
        load_dataset(str(d))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: an MNIST-style directory needs IDX files"):
        load_dataset(str(empty))


def test_cifar_malformed(cifar_dir):
    (cifar_dir / "data_batch_2").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"data_batch_2: cannot read as a CIFAR-10 python batch"):
        load_dataset(str(cifar_dir), trust_pickle=True)


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a crafted CIFAR batch could do with any code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_crafted_cifar_pickle_is_not_executed_without_opting_in(cifar_dir, tmp_path):
    marker = tmp_path / "pwned"
    with open(cifar_dir / "data_batch_1", "wb") as fh:
        pickle.dump(_Payload(str(marker)), fh)
    with pytest.raises(DataError) as e:
        load_dataset(str(cifar_dir))
    msg = str(e.value)
    assert "data_batch_1: not the official CIFAR-10 release (MD5 " in msg and "\n" not in msg
    assert "expected c99cafc152244af753f735de768cd75f" in msg and "data.trust_pickle: true" in msg
    assert not marker.exists()  # nothing was unpickled
    # the danger is real: opting in unpickles the file, and its code runs
    with pytest.raises(DataError, match="a CIFAR-10 batch is a pickled dict"):
        load_dataset(str(cifar_dir), trust_pickle=True)
    assert marker.is_dir()


def test_a_cifar_folder_matching_the_official_checksums_loads_without_opting_in(cifar_dir, monkeypatch):
    import hashlib

    from lrjax.engine import _data

    assert _data.CIFAR10_MD5["test_batch"] == "40351d587109b95175f43aff81a1287e"  # torchvision's list
    fake = {n: hashlib.md5((cifar_dir / n).read_bytes()).hexdigest() for n in ("data_batch_1", "data_batch_2",
                                                                              "test_batch")}
    monkeypatch.setattr(_data, "CIFAR10_MD5", {**_data.CIFAR10_MD5, **fake})  # these files play the release
    ds = load_dataset(str(cifar_dir), normalize=False)
    assert ds.num_train == 48 and len(ds.y_test) == 24
    (cifar_dir / "data_batch_2").write_bytes((cifar_dir / "data_batch_2").read_bytes() + b"\0")  # one byte more
    with pytest.raises(DataError, match=r"data_batch_2: not the official CIFAR-10 release"):
        load_dataset(str(cifar_dir))


def test_iterator_is_a_function_of_its_state():
    it = BatchIterator(10, 3, seed=7)
    first = [it.next_indices() for _ in range(7)]  # 3 batches per epoch: crosses two epoch ends
    assert it.state_dict() == {"seed": 7, "epoch": 2, "position": 1}
    assert sorted(np.concatenate(first[:3]).tolist()) == sorted(np.random.default_rng([7, 0]).permutation(10)[:9])
    it2 = BatchIterator(10, 3, seed=7)
    for _ in range(4):
        it2.next_indices()
    saved = it2.state_dict()
    it3 = BatchIterator(10, 3, seed=0)
    it3.load_state_dict(saved)
    np.testing.assert_array_equal(it3.next_indices(), first[4])
    np.testing.assert_array_equal(it3.next_indices(), first[5])
    assert not np.array_equal(BatchIterator(10, 3, seed=8).next_indices(), first[0])
    with pytest.raises(ValueError, match=r"data.batch_size=11 is larger than the training set \(10 examples\)"):
        BatchIterator(10, 11)
    taken = BatchIterator(10, 3, seed=7)
    np.testing.assert_array_equal(taken.take(7), np.stack(first))  # take(n): the next n batches at once
    assert taken.state_dict() == it.state_dict()


def test_truncated_gz_and_overflowing_idx_headers_are_data_errors(tmp_path, idx_dir):
    d = idx_dir(True)
    raw = (d / "train-images-idx3-ubyte.gz").read_bytes()
    (d / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])  # a download cut short
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot read IDX file \(EOFError"):
        load_dataset(str(d))
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb") as fh:  # dimensions whose product overflows int64
        fh.write(b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"abc")
    with pytest.raises(DataError, match=r"IDX header says shape \(4294967295, 4294967295, 4294967295\)"):
        load_dataset(str(d))


def test_non_finite_inputs_are_refused_naming_the_array_and_row(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    x[7, 1] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, x_train=x, y_train=np.zeros(20, np.int64), x_test=x[:5] * 0, y_test=np.zeros(5, np.int64))
    with pytest.raises(DataError, match=r"nan.npz: x_train holds non-finite values \(NaN or inf\), first in row 7"):
        load_dataset(str(p))


def test_float_targets_are_a_regression_and_any_input_shape_is_kept(tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(30, 12), (30, 12, 2), (30, 4, 4, 3)]:
        p = tmp_path / f"seq{len(shape)}.npz"
        np.savez(p, x_train=rng.normal(size=shape), y_train=rng.normal(size=30), x_test=rng.normal(size=(9, *shape[1:])),
                 y_test=rng.normal(size=9))
        ds = load_dataset(str(p), normalize=False)
        assert ds.x_train.shape == shape and ds.num_classes is None and ds.num_outputs == 1
        assert ds.y_train.dtype == np.float32 and not ds.is_classification
    np.savez(tmp_path / "multi.npz", x_train=rng.normal(size=(30, 4)), y_train=rng.normal(size=(30, 3)),
             x_test=rng.normal(size=(9, 4)), y_test=rng.normal(size=(9, 3)))
    assert load_dataset(str(tmp_path / "multi.npz")).num_outputs == 3


def test_validation_split_is_carved_from_training_by_the_seed():
    full = load_dataset("digits", seed=0)
    a = load_dataset("digits", seed=0, validation_fraction=0.1)
    b = load_dataset("digits", seed=0, validation_fraction=0.1)
    c = load_dataset("digits", seed=1, validation_fraction=0.1)
    assert len(a.y_val) == round(0.1 * full.num_train) and a.num_train + len(a.y_val) == full.num_train
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)
    np.testing.assert_array_equal(a.y_test, full.y_test)  # the test set is untouched
    # validation rows are training rows, never test rows (normalised with the training part's statistics)
    raw = load_dataset("digits", seed=0, normalize=False)
    rawv = load_dataset("digits", seed=0, normalize=False, validation_fraction=0.1)
    train_rows = {r.tobytes() for r in raw.x_train}
    assert all(r.tobytes() in train_rows for r in rawv.x_val)
    with pytest.raises(DataError, match=r"validation_fraction=0.9999 of 1438 training examples leaves 1438"):
        load_dataset("digits", validation_fraction=0.9999)


def test_from_arrays_checks_and_keeps_user_data():
    from lrjax.engine import from_arrays

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    ds = from_arrays({"x_train": x, "y_train": np.arange(20) % 3, "x_test": x[:4], "y_test": np.arange(4) % 3},
                     validation_fraction=0.25)
    assert ds.num_classes == 3 and ds.num_train == 15 and len(ds.y_val) == 5
    assert ds.x_train.max() == 39  # used as given: no normalisation
    with pytest.raises(DataError, match=r"missing y_test, unknown x_tst"):
        from_arrays({"x_train": x, "y_train": np.zeros(20), "x_test": x, "x_tst": x})
    with pytest.raises(DataError, match=r"y_train must have one target per example of x \(20\), got shape \(3,\)"):
        from_arrays({"x_train": x, "y_train": np.zeros(3), "x_test": x, "y_test": np.zeros(20)})


@pytest.mark.slow
def test_mnist1d_is_generated_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LRJAX_CACHE_DIR", str(tmp_path))
    state = np.random.get_state()
    a = load_dataset("mnist1d", normalize=False)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # the global generator is left alone
    assert (a.x_train.shape, a.x_test.shape, a.num_classes) == ((4000, 40), (1000, 40), 10)
    assert (tmp_path / "mnist1d-v1.npz").is_file()
    b = load_dataset("mnist1d", normalize=False)  # from the cache
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert np.bincount(a.y_train).min() > 300  # ten balanced classes


# ----------------------------------------------------------------------------- what a data file must hold

def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("which", ["x_train", "x_test"])
def test_empty_arrays_in_a_npz_are_one_line_data_errors(tmp_path, which):
    arrays = {"x_train": np.ones((6, 3)), "y_train": np.arange(6) % 2, "x_test": np.ones((2, 3)),
              "y_test": np.arange(2)}
    arrays[which] = np.zeros((0, 3))
    arrays["y" + which[1:]] = np.zeros(0, int)
    with pytest.raises(DataError, match=rf"empty.npz: {which} is empty \(shape \(0, 3\)\)"):
        load_dataset(_npz(tmp_path / "empty.npz", **arrays))
    arrays[which] = np.zeros((6 if which == "x_train" else 2, 0))  # examples with no value
    arrays["y" + which[1:]] = np.arange(len(arrays[which])) % 2
    with pytest.raises(DataError, match=rf"{which} is empty \(shape \(\d, 0\)\)"):
        load_dataset(_npz(tmp_path / "empty.npz", **arrays))


def test_labels_are_0_to_c_minus_1_with_no_gap_and_no_unseen_test_label(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 3))
    gap = np.array([0, 1, 2, 10] * 3)
    with pytest.raises(DataError, match=r"gap.npz: y_train's labels are 0, 1, 2, 10, but classes are 0 \.\. C-1 as "
                                        r"stored and 3, 4, 5, 6, 7, 8, 9 never occur"):
        load_dataset(_npz(tmp_path / "gap.npz", x_train=x, y_train=gap, x_test=x[:4], y_test=gap[:4]))
    y = np.array([0, 1, 2] * 4)
    with pytest.raises(DataError, match=r"unseen.npz: y_test holds labels 3, 7 that y_train never has \(its classes "
                                        r"are 0 \.\. 2\)"):
        load_dataset(_npz(tmp_path / "unseen.npz", x_train=x, y_train=y, x_test=x[:4], y_test=np.array([0, 3, 7, 3])))
    # with data.num_classes the labels are checked against it: absent classes are fine, larger labels are not
    ds = load_dataset(str(tmp_path / "gap.npz"), num_classes=12)
    assert ds.num_classes == 12 and ds.num_outputs == 12
    with pytest.raises(DataError, match=r"gap.npz: y_train holds labels 10, outside data.num_classes=10 "
                                        r"\(classes 0 \.\. 9\)"):
        load_dataset(str(tmp_path / "gap.npz"), num_classes=10)
    with pytest.raises(DataError, match=r"data.num_classes=3 is for integer class labels, but the targets are floats"):
        load_dataset(_npz(tmp_path / "reg.npz", x_train=x, y_train=x[:, 0], x_test=x[:4], y_test=x[:4, 0]),
                     num_classes=3)
    with pytest.raises(ValueError, match=r"data.num_classes must be an integer >= 1, got data.num_classes=0"):
        load_dataset(str(tmp_path / "gap.npz"), num_classes=0)


def test_user_validation_labels_are_checked_like_the_test_labels():
    from lrjax.engine import from_arrays

    x, y = np.ones((6, 2)), np.array([0, 1, 2, 0, 1, 2])
    arrays = {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2], "x_val": x[:2], "y_val": np.array([1, 5])}
    with pytest.raises(DataError, match=r"data: y_val holds labels 5 that y_train never has"):
        from_arrays(arrays)
    assert from_arrays(arrays, num_classes=6).num_classes == 6


def test_a_npz_without_a_test_split_holds_out_a_seeded_test_fraction(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 4)).astype(np.float32), np.arange(50) % 5
    p = _npz(tmp_path / "train_only.npz", x_train=x, y_train=y)
    a = load_dataset(p, seed=3, test_fraction=0.2, normalize=False)
    assert a.num_train == 40 and len(a.y_test) == 10 and a.num_classes == 5
    perm = np.random.default_rng(3).permutation(50)  # the digits' rule: the first 20 % of the seeded permutation
    np.testing.assert_array_equal(a.x_test, x[perm[:10]])
    np.testing.assert_array_equal(a.y_train, y[perm[10:]])
    np.testing.assert_array_equal(load_dataset(p, seed=3, normalize=False).y_test, a.y_test)
    assert not np.array_equal(load_dataset(p, seed=4, normalize=False).y_test, a.y_test)
    assert len(load_dataset(p, seed=3, test_fraction=0.5).y_test) == 25
    with pytest.raises(DataError, match=r"test_fraction=0.001 of 50 examples leaves 0 for the test split"):
        load_dataset(p, test_fraction=0.001)


def test_a_npz_object_array_and_a_yaml_python_tag_never_run_code(tmp_path):
    from lrjax.engine import ConfigError, load_config

    marker = tmp_path / "pwned"
    x = np.empty(4, dtype=object)
    x[:] = [_Payload(str(marker))] * 4
    p = _npz(tmp_path / "obj.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    with pytest.raises(DataError, match=r"obj.npz: cannot read as a .npz file .*allow_pickle=False"):
        load_dataset(p)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"name: !!python/object/apply:os.mkdir [{str(marker)!r}]\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml: not valid YAML: could not determine a constructor"):
        load_config(cfg)
    assert not marker.exists()
