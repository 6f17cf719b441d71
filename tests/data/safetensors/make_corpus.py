#!/usr/bin/env python3
"""Writes the safetensors regression corpus: one valid file and malformed files, each with the
fragment of the error message the reader must give (EXPECTED.tsv). Run from this folder:
    python3 make_corpus.py
Plain Python, no packages: the format is written byte by byte."""
import json
import struct


def build(header, data=b"", raw_header=None, length=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    body = text.encode()
    n = len(body) if length is None else length
    return struct.pack("<Q", n) + body + data


f32 = struct.pack("<4f", 1.0, -2.0, 3.5, 0.25)
valid = build({"__metadata__": {"format": "pt"},
               "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
               "ids": {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]}},
              f32 + struct.pack("<2q", 7, -9))

cases = {
    "valid.safetensors": (valid, ""),
    "bad_empty.safetensors": (b"", "too short for the 8-byte header length"),
    "bad_short.safetensors": (b"\x10\x00\x00", "too short for the 8-byte header length"),
    "bad_header_past_end.safetensors": (build({}, raw_header="{}", length=4096),
                                        "runs past the end of the file"),
    "bad_header_huge.safetensors": (struct.pack("<Q", 2**62) + b"{}", "exceeds the 100 MB limit"),
    "bad_json.safetensors": (build(None, raw_header='{"w": {"dtype": "F32",'), "not valid JSON"),
    "bad_not_object.safetensors": (build(None, raw_header="[1, 2, 3]"), "must be a JSON object"),
    "bad_entry_not_object.safetensors": (build({"w": 5}), "tensor \"w\": entry must be an object"),
    "bad_unknown_dtype.safetensors": (build({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
                                            b"\0" * 4), "tensor \"w\": unsupported dtype \"F8_E4M3\""),
    "bad_missing_dtype.safetensors": (build({"w": {"shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
                                      "missing or non-string \"dtype\""),
    "bad_negative_shape.safetensors": (build({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
                                             b"\0" * 4), "must hold non-negative integers"),
    "bad_offsets_out_of_range.safetensors": (build({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                                                   b"\0" * 8), "but the data buffer has 8 bytes"),
    "bad_offsets_reversed.safetensors": (build({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}},
                                               b"\0" * 8), "end before they begin"),
    "bad_size_mismatch.safetensors": (build({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}},
                                            b"\0" * 16), "F32 [3] needs 12 bytes, data_offsets give 16"),
    "bad_overlap.safetensors": (build({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                                      b"\0" * 12), "overlaps tensor"),
    "bad_hole.safetensors": (build({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
                                   b"\0" * 12), "belong to no tensor"),
    "bad_trailing_bytes.safetensors": (build({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                             b"\0" * 9), "the tensors cover 4"),
    "bad_duplicate_name.safetensors": (build(None, raw_header='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                                              '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
                                       + b"\0" * 4, "tensor \"a\" appears twice"),
    "bad_metadata_value.safetensors": (build({"__metadata__": {"step": 5}}), "__metadata__ value of \"step\" must be a string"),
    "bad_unknown_field.safetensors": (build({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "strides": [1]}},
                                            b"\0" * 4), "unknown field \"strides\""),
    "bad_truncated_data.safetensors": (valid[:-5], "but the data buffer has 27 bytes"),
}

with open("EXPECTED.tsv", "w") as manifest:
    manifest.write("file\terror message fragment (empty: the file is valid)\n")
    for name, (content, fragment) in cases.items():
        with open(name, "wb") as f:
            f.write(content)
        manifest.write(f"{name}\t{fragment}\n")
