"""Data loaders for each format, their errors, and the seeded iterator."""

import gzip
import pickle

import numpy as np
import pytest

from lrjax.train import BatchIterator, DataError, load_dataset


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
    ds = load_dataset(str(cifar_dir), normalize=False)
    assert ds.input_shape == (32, 32, 3) and ds.num_train == 48 and len(ds.y_test) == 24
    with open(cifar_dir / "test_batch", "rb") as fh:
        raw = pickle.load(fh)[b"data"]
    # channel-first rows become NHWC
    np.testing.assert_allclose(ds.x_test[0, 0, 1, 2], raw[0][2 * 1024 + 1] / 255.0)


def test_missing_and_malformed_files_name_the_path(tmp_path, npz_file, idx_dir):
    with pytest.raises(DataError, match=r"nope.npz: no such file or directory \(expected 'digits', a .npz"):
        load_dataset(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"bad.npz: a .npz dataset needs arrays x_train, y_train, x_test, y_test; "
                                        r"missing y_train, x_test, y_test"):
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
