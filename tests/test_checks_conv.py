"""The chapter 1-3 self-checks pass right answers and catch the usual mistakes with the
right hint.
"""

from conftest import said

from mnist_cnn.teach import ops
from mnist_cnn.teach.checks import conv as checks


def correct_conv(x, w, stride=1, padding=0):
    return ops.conv2d(x, w, stride=stride, padding=padding)


def flipped_conv(x, w, stride=1, padding=0):
    return ops.conv2d(x, w[::-1, ::-1], stride=stride, padding=padding)


def no_padding_conv(x, w, stride=1, padding=0):
    return ops.conv2d(x, w, stride=stride)


def off_by_one_conv(x, w, stride=1, padding=0):
    return ops.conv2d(x, w, stride=stride, padding=padding)[:-1, :-1]


def no_stride_conv(x, w, stride=1, padding=0):
    return ops.conv2d(x, w, padding=padding)


def test_correct_conv_passes(capsys):
    assert checks.check_conv2d(correct_conv)
    assert checks.check_conv2d(ops.conv2d_im2col, seed=3)
    assert said(capsys).startswith("PASS")


def test_mistakes_fail_with_a_matching_hint(capsys):
    for fn, hint in [
        (flipped_conv, "cross-correlation"),
        (no_padding_conv, "without padding"),
        (off_by_one_conv, "+1"),
        (no_stride_conv, "stride"),
    ]:
        assert not checks.check_conv2d(fn)
        out = said(capsys)
        assert out.startswith("FAIL") and hint in out, (fn.__name__, out)


def test_a_crash_is_reported_not_raised(capsys):
    def broken(x, w, stride=1, padding=0):
        raise IndexError("index 5 is out of bounds")

    assert not checks.check_conv2d(broken)
    assert "IndexError" in said(capsys)


def test_output_size_check(capsys):
    assert checks.check_output_size(
        lambda n, k, s, p: ops.conv_output_size(n, k, s, p, strict=False)
    )
    for fn, hint in [
        (lambda n, k, s, p: (n + 2 * p - k) // s, "+ 1"),
        (lambda n, k, s, p: (n + p - k) // s + 1, "BOTH"),
        (lambda n, k, s, p: (n + 2 * p - k) / s + 1, "int"),
    ]:
        capsys.readouterr()
        assert not checks.check_output_size(fn)
        assert hint in said(capsys)


def test_standardize_check_catches_test_leakage(capsys):
    def right(train, test):
        return (train - train.mean()) / train.std(), (test - train.mean()) / train.std()

    def leaky(train, test):
        return (train - train.mean()) / train.std(), (test - test.mean()) / test.std()

    assert checks.check_standardize(right)
    assert not checks.check_standardize(leaky)
    assert "leaks" in said(capsys)
