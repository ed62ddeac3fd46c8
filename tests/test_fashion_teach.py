"""mnist_cnn.teach.fashion: upstream's benchmark files, the study runner, the helpers of
the "Harder images" chapter."""

from __future__ import annotations

import gzip
import http.server
import itertools
import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnist_cnn import Config, evaluate, load_data
from mnist_cnn.model import init_model
from mnist_cnn.pixels import as_batch
from mnist_cnn.teach import fashion
from mnist_cnn.teach import generalisation as gen
from mnist_cnn.train import training_steps

DEBIAN_GRID = fashion.DEBIAN_DOC / fashion.GRID_FILE
DEBIAN_README = fashion.DEBIAN_DOC / "README.md.gz"

README = """# A data set

## Benchmark
Some text.

| Classifier | Preprocessing | Fashion acc. | MNIST acc. | Submitter| Code |
| --- | --- |--- | --- | --- |--- |
|2 Conv+pooling | None | 0.876 | - | [Kashif](https://x.y/k) | [:link:](https://a.b) |
|HOG+SVM| HOG | 0.926 | - | [@s](https://github.com/s) | [:link:](https://c.d)|
|XgBoost| scaling | 0.898| 0.958| [@a](https://github.com/a)| [:link:](https://e.f)|
|Human Performance| Crowd-sourced | 0.835 | - | Leo  | - |
|GRU+SVM | None| 0.888 | 0.965 | [@A](https://github.com/A) | [:link:](https://g.h)|

### Other Explorations

| Classifier | Preprocessing | Fashion test accuracy | MNIST test accuracy | Submitter|
| --- | --- | --- | --- | --- |
| Not a result | None | 0.5 | - | nobody |
"""


def _runner_settings(grid: dict) -> dict[str, int]:
    """Upstream's runner.py expansion (itertools.product of every listed value)."""
    return {
        name: len(
            list(itertools.product(*[v for group in groups for v in group.values()]))
        )
        for name, groups in grid["classifiers"].items()
    }


# ---------------------------------------------------------------- the benchmark grid


def test_grid_counts_every_combination(tmp_path):
    grid = {
        "common": {},
        "classifiers": {
            "A": [{"x": [1, 2]}, {"y": [1, 2, 3]}],
            "B": [{"p": [1], "q": ["u", "v"]}],
        },
    }
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(grid))
    assert fashion.benchmark_grid(path) == {"A": 6, "B": 2}


def test_grid_reads_gzipped_files_and_rejects_others(tmp_path):
    path = tmp_path / "baselines.json.gz"
    path.write_bytes(gzip.compress(b'{"classifiers": {"C": [{"k": [1, 2, 3]}]}}'))
    assert fashion.benchmark_grid(path) == {"C": 3}
    other = tmp_path / "other.json"
    other.write_text('{"something": 1}')
    with pytest.raises(ValueError, match="classifiers"):
        fashion.benchmark_grid(other)


@pytest.mark.skipif(not DEBIAN_GRID.is_file(), reason="dataset-fashion-mnist absent")
def test_debian_grid_matches_upstreams_runner():
    counts = fashion.benchmark_grid(DEBIAN_GRID)
    assert counts == _runner_settings(json.loads(DEBIAN_GRID.read_text()))
    assert len(counts) == 14
    assert counts["SVC"] == 12  # C in {1, 10, 100} x 4 kernels


# ------------------------------------------------------------ the submitted results


def test_submitted_rows_parse_links_dashes_and_kinds(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(README)
    rows = fashion.submitted_benchmarks(path)
    assert [r["classifier"] for r in rows] == [
        "2 Conv+pooling",
        "HOG+SVM",
        "XgBoost",
        "Human Performance",
        "GRU+SVM",
    ]  # the table after the next heading is not part of it
    assert [r["fashion"] for r in rows] == [0.876, 0.926, 0.898, 0.835, 0.888]
    assert [r["mnist"] for r in rows] == [None, None, 0.958, None, 0.965]
    assert rows[0]["submitter"] == "Kashif"
    assert [r["kind"] for r in rows] == [
        "neural network",
        "classical",
        "classical",
        "human",
        "neural network",
    ]
    gz = tmp_path / "README.md.gz"
    gz.write_bytes(gzip.compress(README.encode()))
    assert fashion.submitted_benchmarks(gz) == rows


def test_submitted_needs_a_benchmark_table(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# Nothing here\n")
    with pytest.raises(ValueError, match="Benchmark"):
        fashion.submitted_benchmarks(path)
    path.write_text("## Benchmark\nno table\n")
    with pytest.raises(ValueError, match="no result rows"):
        fashion.submitted_benchmarks(path)


@pytest.mark.skipif(not DEBIAN_README.is_file(), reason="dataset-fashion-mnist absent")
def test_debian_readme_has_upstreams_rows():
    rows = {r["classifier"]: r for r in fashion.submitted_benchmarks(DEBIAN_README)}
    # Rows of upstream's README table (the file Debian ships).
    assert rows["HOG+SVM"]["fashion"] == 0.926
    assert rows["HOG+SVM"]["kind"] == "classical"
    assert rows["Human Performance"]["fashion"] == 0.835
    assert rows["Human Performance"]["kind"] == "human"
    assert rows["2 Conv <100K parameters"]["mnist"] == 0.992


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("3 Conv+BN+pooling", "neural network"),
        ("ResNet18", "neural network"),
        ("MLP 256-128-100", "neural network"),
        ("GRU+SVM with dropout", "neural network"),
        ("HOG+SVM", "classical"),
        ("XgBoost", "classical"),
        ("Human Performance", "human"),
    ],
)
def test_kind(name, expected):
    assert fashion.kind(name) == expected


# ------------------------------------------------------ finding or downloading files


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over a folder: (base URL, folder, list of paths asked)."""
    root = tmp_path / "upstream"
    root.mkdir()
    asked = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, asked
    httpd.shutdown()
    httpd.server_close()


def test_file_found_in_folder_plain_or_gzipped(tmp_path):
    (tmp_path / "README.md.gz").write_bytes(gzip.compress(README.encode()))
    found = fashion.benchmark_file("README.md", tmp_path, base_url="http://0.0.0.0:9/")
    assert found == tmp_path / "README.md.gz"
    (tmp_path / "README.md").write_text(README)
    assert fashion.benchmark_file("README.md", tmp_path) == tmp_path / "README.md"


def test_file_downloaded_once_into_the_cache(tmp_path, server, monkeypatch):
    url, root, asked = server
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (root / "README.md").write_text(README)
    empty = tmp_path / "no-debian"
    path = fashion.benchmark_file("README.md", empty, base_url=url, timeout=10)
    assert path == tmp_path / "cache" / "mnist_cnn" / "fashion-mnist-doc" / "README.md"
    assert path.read_text() == README
    again = fashion.benchmark_file("README.md", empty, base_url=url, timeout=10)
    assert again == path and asked == ["/README.md"]  # the second call read the cache


def test_bad_download_caches_nothing(tmp_path, server, monkeypatch):
    url, root, _ = server
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (root / "benchmark").mkdir()
    (root / "benchmark" / "baselines.json").write_text("<html>proxy error</html>")
    with pytest.raises(ValueError, match="nothing was cached"):
        fashion.benchmark_file(fashion.GRID_FILE, tmp_path, base_url=url, timeout=10)
    assert not list((tmp_path / "cache").rglob("baselines.json"))


def test_missing_file_says_how_to_get_it(tmp_path, server, monkeypatch):
    url, _, _ = server  # serves an empty folder: 404
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(fashion.BenchmarkNotFoundError, match="apt install"):
        fashion.benchmark_file("README.md", tmp_path, base_url=url, timeout=10)


# ------------------------------------------------------------- mistakes and filters


def test_confused_examples_picks_true_and_predicted_class():
    y_true = np.array([6, 0, 6, 6, 2, 6, 6])
    y_pred = np.array([0, 0, 6, 0, 6, 0, 0])
    assert fashion.confused_examples(y_true, y_pred, 6, 0).tolist() == [0, 3, 5, 6]
    assert fashion.confused_examples(y_true, y_pred, 6, 0, k=2).tolist() == [0, 3]
    assert fashion.confused_examples(y_true, y_pred, 2, 6).tolist() == [4]
    with pytest.raises(ValueError, match="equal length"):
        fashion.confused_examples(y_true, y_pred[:3], 6, 0)


def test_contrast_share_by_hand():
    kernel = np.zeros((3, 3, 1, 3))
    kernel[:, :, 0, 0] = 2.0  # all brightness, no contrast
    kernel[:, :, 0, 1] = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]  # zero mean: all contrast
    kernel[0, 0, 0, 2] = 1.0  # one weight: mean 1/9, contrast (8/9)^2 + 8 (1/9)^2
    np.testing.assert_allclose(fashion.contrast_share(kernel), [0.0, 1.0, 8 / 9])
    with pytest.raises(ValueError, match="kh, kw, 1, C"):
        fashion.contrast_share(np.ones((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="all zeros"):
        fashion.contrast_share(np.zeros((3, 3, 1, 1)))


def test_confused_both_ways_counts_both_directions():
    matrix = np.diag([50, 50, 50, 50])
    matrix[0, 1], matrix[2, 3], matrix[3, 2] = 5, 4, 4
    assert fashion.confused_both_ways(matrix) == (2, 3, 8)
    matrix[1, 0] = 3
    assert fashion.confused_both_ways(matrix) == (0, 1, 8)  # a tie: the smaller pair
    with pytest.raises(ValueError, match="square"):
        fashion.confused_both_ways(np.ones((2, 3)))


def test_check_confused_both_ways_passes_and_fails(capsys):
    assert fashion.check_confused_both_ways(fashion.confused_both_ways)
    assert "PASS" in capsys.readouterr().out

    def one_way(matrix):  # the largest single cell: the mistake the check is for
        off = matrix - np.diag(np.diag(matrix))
        a, b = np.unravel_index(np.argmax(off), off.shape)
        return int(a), int(b), int(off[a, b])

    assert not fashion.check_confused_both_ways(one_way)
    out = capsys.readouterr().out
    assert "FAIL" in out and "both directions" in out
    assert not fashion.check_confused_both_ways(lambda m: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_plot_confusion_labels_both_axes():
    names = [f"class {i}" for i in range(10)]
    fig = fashion.plot_confusion(np.arange(100).reshape(10, 10), names)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    with pytest.raises(ValueError, match="9 names"):
        fashion.plot_confusion(np.eye(10, dtype=int), names[:9])


# --------------------------------------------------------------------- the study


@pytest.fixture(scope="module")
def small_fashion():
    """1,200 training images (the last 200 held out by the study) and 10 test images."""
    (x, y), (xt, yt) = load_data(dataset="fashion")
    return (x[:1200], y[:1200]), (xt[:10], yt[:10])


SMALL = Config(
    dataset="fashion",
    conv_channels=(4, 8),
    dense=(16,),
    validation_size=200,
    train_size=640,
)


def test_study_scores_every_run_on_validation(small_fashion):
    variants = {"plain": {}, "flips": {"flip": True}}
    rows, models = fashion.study(small_fashion, SMALL, (0, 1), variants)
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("plain", 0),
        ("plain", 1),
        ("flips", 0),
        ("flips", 1),
    ]
    (x, y), _ = small_fashion
    for r in rows:  # the last 200 training images, never the test set
        model = models[r["variant"], r["seed"]]
        assert r["validation"] == evaluate(model, x[1000:], y[1000:])
        assert model.config.flip == (r["variant"] == "flips")
        assert r["seconds"] > 0
    table = gen.summarise(rows, "variant", ["validation"])
    plain = [r["validation"] for r in rows if r["variant"] == "plain"]
    assert table["plain"]["validation"]["mean"] == pytest.approx(np.mean(plain))
    assert fashion.best_variant(table) in variants


def test_study_refuses_to_run_without_validation(small_fashion):
    with pytest.raises(ValueError, match="validation"):
        fashion.study(small_fashion, SMALL.replace(validation_size=0), (0,))


def test_plot_study_draws_every_run_and_mean():
    rows = [
        {"variant": v, "seed": s, "validation": 0.8 + 0.01 * s + (v == "b") * 0.05}
        for v in ("a", "b")
        for s in range(3)
    ]
    fig = fashion.plot_study(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    bars = [line for line in ax.lines if line.get_marker() != "o"]
    np.testing.assert_allclose(dots[1].get_xdata(), [85, 86, 87])
    np.testing.assert_allclose(bars[1].get_xdata(), [86, 86])
    with pytest.raises(ValueError, match="no rows"):
        fashion.plot_study([])


def test_best_variant_is_highest_mean():
    table = {
        "a": {"validation": {"mean": 0.80, "min": 0.7, "max": 0.9}},
        "b": {"validation": {"mean": 0.85, "min": 0.84, "max": 0.86}},
    }
    assert fashion.best_variant(table) == "b"
    with pytest.raises(ValueError, match="empty"):
        fashion.best_variant({})


# ------------------------------------------------------------------ several devices


def test_timed_steps_returns_the_loops_losses(small_fashion):
    (x, y), _ = small_fashion
    config = SMALL.replace(validation_size=0)
    xd, yd = as_batch(x[:640]), jnp.asarray(y[:640], jnp.int32)
    ms, losses = fashion.timed_steps(config, xd, yd, steps=4, warmup=2)
    assert ms > 0 and len(losses) == 6
    loop = training_steps(init_model(config, xd), config, xd, yd)
    expected = [float(loss) for _, _, loss, _ in itertools.islice(loop, 6)]
    assert losses == expected  # same seed, same batches, same losses
    with pytest.raises(ValueError, match="positive"):
        fashion.timed_steps(config, xd, yd, steps=0)


def test_devices_summary_lists_local_devices():
    lines = fashion.devices_summary()
    assert len(lines) == jax.local_device_count()
    assert lines[0].startswith(f"{jax.local_devices()[0].id}: ")


def test_figures_are_legible_in_the_books_column():
    from test_figure_text import too_small  # the book's legibility rule (tests/)

    rows = [{"variant": f"variant {v}", "validation": 0.9} for v in range(7)]
    for fig in (
        fashion.plot_confusion(
            np.eye(10, dtype=int) * 900, [f"c{i}" for i in range(10)]
        ),
        fashion.plot_study(rows),
    ):
        assert too_small(fig) == []
