"""`python -m search_space.latency_table`: a latency table of a space, measured on this device.

    python -m search_space.latency_table --space heads --input 128x256 --threads 2 \\
        --out tables/laptop-128x256.json

Run it once on the device a network will be deployed to: every part of the space at each
input size is timed alone, deployed as the network is, then whole networks fit the correction
(`search_space.latency_table.table.Correction`). A study reads the file with
`study.latency.source=table study.latency.table=FILE`.

A device that cannot run this stack (a phone, an embedded board):
`--export DIR` writes every part and the calibration networks as ONNX files with a
`manifest.json`; time them with the vendor's benchmark tool, write `file,median_ms` rows to a
CSV, and `--import TIMES.csv --manifest DIR --device-name NAME --out FILE` makes the table.
`--runtime onnxruntime` does both here, with onnxruntime as the tool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch

from search_space.deploy import DTYPES, retain_freed_memory
from search_space.latency_table import onnx_parts
from search_space.latency_table.build import CALIBRATION_NETWORKS, build_table
from search_space.latency_table.table import LatencyTable, TableError, size_text
from search_space.space import SearchSpace, SpaceError, load_space
from workbench.cli import CommandParser, positive_int, size
from workbench.conf import CONF_DIR, compose_option


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(
        prog="python -m search_space.latency_table",
        description="Time every part of a search space on this device (or export them as ONNX "
        "for another device's tool, and import its times): the table that predicts any "
        "member's latency there.",
    )
    parser.add_argument(
        "--space", default="heads", help="a space of conf/space/ or a YAML file (default heads)"
    )
    parser.add_argument(
        "--input", type=size, action="append", dest="input_sizes", metavar="HxW",
        help="an input size the table covers (repeat for several; default 128x256)",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    parser.add_argument("--dtype", default="fp32", choices=tuple(DTYPES))
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--num-classes", type=positive_int, default=19)
    parser.add_argument(
        "--calibration", type=positive_int, default=CALIBRATION_NETWORKS,
        help="whole networks per input size the correction is fitted on",
    )  # fmt: skip
    parser.add_argument(
        "--runtime", default="pytorch", choices=("pytorch", "onnxruntime"),
        help="pytorch: the deployed path; onnxruntime: each part exported and run there",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="the table file (JSON)")
    parser.add_argument("--export", type=Path, metavar="DIR", help="write ONNX parts + manifest")
    parser.add_argument(
        "--import", type=Path, dest="import_times", metavar="TIMES_CSV",
        help="times a vendor tool measured for an --export folder (file,median_ms)",
    )  # fmt: skip
    parser.add_argument("--manifest", type=Path, metavar="DIR", help="the --export folder")
    parser.add_argument("--device-name", help="the imported times' device, as it should read")
    args = parser.parse_args(argv)
    # The seeded draws of whole networks open in-memory studies: one log line each, otherwise.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    try:
        return _run(args)
    except (SpaceError, TableError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.import_times is not None:
        if args.manifest is None or args.out is None or not args.device_name:
            raise ValueError("--import needs --manifest DIR, --device-name NAME and --out FILE")
        table = onnx_parts.import_times(
            args.manifest, args.import_times, device_name=args.device_name
        )
        return _written(table, args.out)
    space = read_space(args.space)
    sizes = args.input_sizes or [(128, 256)]
    if args.export is not None:
        manifest = onnx_parts.export_parts(
            space, sizes, args.export, batch=args.batch, dtype=args.dtype,
            num_classes=args.num_classes, calibration_networks=args.calibration,
        )  # fmt: skip
        print(f"wrote {manifest}: time each file listed there and write file,median_ms rows")
        return 0
    if args.out is None:
        raise ValueError("give --out FILE (or --export DIR)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    retain_freed_memory()  # CPU medians that do not depend on the allocator's state
    if args.runtime == "onnxruntime":
        table = onnx_parts.onnxruntime_table(
            space, sizes, threads=args.threads, batch=args.batch, dtype=args.dtype,
            num_classes=args.num_classes, calibration_networks=args.calibration,
        )  # fmt: skip
    else:
        table = build_table(
            space,
            sizes,
            device=device,
            threads=args.threads,
            dtype=args.dtype,
            batch=args.batch,
            num_classes=args.num_classes,
            calibration_networks=args.calibration,
        )
    return _written(table, args.out)


def _written(table: LatencyTable, path: Path) -> int:
    table.save(path)
    sizes = ", ".join(map(size_text, table.input_sizes))
    print(
        f"wrote {path}: {len(table.entries)} parts of space '{table.space}' at {sizes} on "
        f"{table.describe_device()}, digest {table.digest[:12]}"
    )
    for note in table.notes:
        print(note)
    return 0


def read_space(name_or_path: str) -> SearchSpace:
    """A space of conf/space/ by name (composed as a study composes it), or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        return load_space(path)
    if not (CONF_DIR / "space" / f"{name_or_path}.yaml").is_file():
        known = sorted(p.stem for p in (CONF_DIR / "space").glob("*.yaml"))
        raise SpaceError(f"--space {name_or_path!r}: expected one of {known} or a YAML file")
    return load_space(compose_option("space", name_or_path), name_or_path)


if __name__ == "__main__":
    raise SystemExit(main())
