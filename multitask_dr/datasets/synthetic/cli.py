"""Command line: ``python -m multitask_dr.datasets.synthetic`` (also ``multitask-dr synth``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from multitask_dr.datasets.synthetic.sampling import DEFAULT_GRADE_PROBS, check_grade_probs
from multitask_dr.datasets.synthetic.writers import (
    RETINAMNIST_SIZES,
    retinamnist_filename,
    write_synthetic,
)
from multitask_dr.lesions import NUM_GRADES


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write both synthetic datasets.

    Args:
        argv: Arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        Process exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="python -m multitask_dr.datasets.synthetic",
        description="Write a synthetic TJDR tree and synthetic RetinaMNIST files.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=32, help="TJDR training images")
    parser.add_argument("--n-test", type=int, default=8, help="TJDR test images")
    parser.add_argument("--size", type=int, default=256, help="TJDR image side in pixels")
    parser.add_argument("--no-labelme", action="store_true", help="skip the Labelme JSON files")
    parser.add_argument(
        "--retina-sizes", type=int, nargs="+", default=list(RETINAMNIST_SIZES), metavar="S"
    )
    parser.add_argument("--retina-n-train", type=int, default=200)
    parser.add_argument("--retina-n-val", type=int, default=50)
    parser.add_argument("--retina-n-test", type=int, default=100)
    parser.add_argument(
        "--grade-probs",
        type=float,
        nargs=NUM_GRADES,
        default=None,
        metavar="P",
        help=f"grade 0-4 weights (default {' '.join(map(str, DEFAULT_GRADE_PROBS))})",
    )
    args = parser.parse_args(argv)
    try:
        check_grade_probs(args.grade_probs)
        retina_names = [retinamnist_filename(size) for size in args.retina_sizes]
    except ValueError as error:
        parser.error(str(error))
    paths = write_synthetic(
        args.out,
        seed=args.seed,
        n_train=args.n_train,
        n_test=args.n_test,
        size=args.size,
        labelme=not args.no_labelme,
        retina_sizes=args.retina_sizes,
        retina_n_train=args.retina_n_train,
        retina_n_val=args.retina_n_val,
        retina_n_test=args.retina_n_test,
        grade_probs=args.grade_probs,
    )
    print(f"TJDR-format tree: {paths['tjdr']} ({args.n_train} train / {args.n_test} test)")
    for name in retina_names:
        print(f"RetinaMNIST file: {paths['retinamnist'] / name}")
    return 0
