import json

import pytest

from tests.fakes.go_json import as_struct, object_pairs

FIELDS = ("model", "options", "stream")


# What Go 1.22's encoding/json reads into struct{Model string; Options map[string]any} for each body.
@pytest.mark.parametrize("raw, read", [
    (b'{"model":"m","options":{"num_ctx":99999},"options":{"num_gpu":1}}',
     {"model": "m", "options": {"num_ctx": 99999, "num_gpu": 1}}),
    (b'{"model":"m","options":{"num_ctx":99999},"\\u006fptions":{}}', {"model": "m", "options": {"num_ctx": 99999}}),
    (b'{"model":"m","Options":{"num_ctx":99999},"options":{"num_gpu":1}}',
     {"model": "m", "options": {"num_ctx": 99999, "num_gpu": 1}}),
    (b'{"model":"m","options":{"num_ctx":1,"NUM_CTX":9,"num_ctx":2}}', {"model": "m", "options": {"num_ctx": 2,
                                                                                                  "NUM_CTX": 9}}),
    (b'{"model":"m","options":{"num_ctx":1},"options":null}', {"model": "m", "options": None}),
    (b'{"model":"a","MODEL":"b"}', {"model": "b"}),
])
def test_a_body_is_read_as_go_reads_it(raw, read):
    assert as_struct(json.loads(raw), FIELDS, maps=("options",), pairs=object_pairs(raw)) == read


def test_object_pairs_keeps_every_key_in_order():
    assert object_pairs(b' {"a": 1, "a": {"b": 2}} ') == [["a", 1], ["a", {"b": 2}]]
    assert object_pairs(b"[1]") is None
