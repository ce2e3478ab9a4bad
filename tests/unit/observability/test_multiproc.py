import os

from ollama_proxy.observability import multiproc


def test_prepare_without_a_path_makes_a_new_temporary_directory():
    path = multiproc.prepare(None)
    try:
        assert os.path.isdir(path) and os.listdir(path) == []
        assert os.path.basename(path).startswith(multiproc.PREFIX)
    finally:
        multiproc.remove(path)
    assert not os.path.exists(path)


def test_prepare_empties_a_named_directory_of_metric_files_only(tmp_path):
    for name in ("counter_12.db", "gauge_livesum_12.db", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert multiproc.prepare(str(tmp_path)) == str(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_prepare_creates_a_named_directory(tmp_path):
    path = tmp_path / "a" / "metrics"
    multiproc.prepare(str(path))
    assert path.is_dir()


def test_remove_leaves_a_directory_the_operator_named(tmp_path):
    multiproc.remove(str(tmp_path))
    assert tmp_path.is_dir()
