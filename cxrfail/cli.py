"""The ``cxrfail`` command: ``cxrfail analyze`` writes the full report; inference commands come from
`cxrfail.inference.cli`. Input errors exit with status 2 and one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrfail.errors import CxrfailInputError

EXIT_INPUT_ERROR = 2


def _parse_column_map(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise CxrfailInputError(f"--column-map entry {pair!r} is not FIELD=COLUMN",
                                    fix="e.g. --column-map image_id=Image patient_id=Patient age=Age")
        mapping[field] = column
    return mapping


def _add_analyze(subparsers: argparse._SubParsersAction) -> None:
    from cxrfail.analysis.identifiers import FEATURE_SETS, LEARNERS
    from cxrfail.analysis.pipeline import AnalysisConfig
    from cxrfail.analysis.thresholds import THRESHOLD_METHODS
    from cxrfail.cohort import UNCERTAIN_POLICIES

    defaults = AnalysisConfig()
    parser = subparsers.add_parser(
        "analyze", help="run the whole failure analysis and write a report folder",
        description="With no arguments: the NIH demo cohort with every shared prediction file.",
    )
    cohort = parser.add_argument_group("cohort")
    cohort.add_argument("--cohort", choices=["demo", "nih", "chexpert", "csv"], default="demo",
                        help="demo: NIH test split from ../shared (default); nih: NIH metadata (torchxrayvision's "
                             "bundled copy unless --cohort-file); chexpert / csv: --cohort-file")
    cohort.add_argument("--cohort-file", type=Path, help="the cohort CSV")
    cohort.add_argument("--column-map", nargs="+", default=[], metavar="FIELD=COLUMN",
                        help="for --cohort csv: image_id, patient_id, age, sex, view, image_path, or a finding")
    cohort.add_argument("--uncertain", choices=UNCERTAIN_POLICIES, default="zeros",
                        help="CheXpert -1 labels: as zeros (default), as ones, or drop")
    cohort.add_argument("--unit", choices=["study", "image"], default="study", help="CheXpert unit of analysis")
    cohort.add_argument("--images", type=Path, help="image folder (NIH or csv cohorts)")
    cohort.add_argument("--devices", type=Path, help="support-device reads CSV (NIH cohorts)")
    preds = parser.add_argument_group("predictions")
    preds.add_argument("--predictions", nargs="+", type=Path, help="prediction CSV files, one model each")
    preds.add_argument("--model-names", nargs="+", help="names for the models, in the order of the files")
    preds.add_argument("--min-overlap", type=float, default=defaults.min_overlap,
                       help="refuse a model with fewer of its ids in the cohort (default %(default)s)")
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--findings", nargs="+", help="findings to analyse (default: the five competition tasks)")
    analysis.add_argument("--threshold", choices=THRESHOLD_METHODS, default=defaults.threshold_method)
    analysis.add_argument("--fixed-threshold", type=float, default=defaults.fixed_threshold)
    analysis.add_argument("--calibration-fraction", type=float, default=defaults.calibration_fraction)
    analysis.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(defaults.learners))
    analysis.add_argument("--feature-sets", nargs="+", choices=FEATURE_SETS, default=list(defaults.feature_sets))
    analysis.add_argument("--subgroups", nargs="+", default=[], help="further cohort columns to slice by")
    analysis.add_argument("--min-subgroup-n", type=int, default=defaults.min_subgroup_n)
    analysis.add_argument("--folds", type=int, default=defaults.n_folds)
    analysis.add_argument("--bootstrap", type=int, default=defaults.n_bootstrap, help="bootstrap replicates")
    analysis.add_argument("--seed", type=int, default=defaults.seed)
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, default=Path("out/report"), help="report folder (default %(default)s)")
    output.add_argument("--cache-dir", type=Path, help="on-disk cache (default $CXRFAIL_CACHE_DIR or ~/.cache/cxrfail)")
    output.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    output.add_argument("--no-figures", action="store_true", help="tables and manifest only")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run the model × finding pairs as tasks on a Ray cluster (HOST:PORT or auto; default "
                             "$CXRFAIL_RAY_ADDRESS); the tables equal a local run's")
    parser.set_defaults(handler=_analyze)


def _load_inputs(args: argparse.Namespace):
    from cxrfail import cohort as cohorts
    from cxrfail import demo
    from cxrfail.predictions import load_prediction_files

    prediction_files = list(args.predictions) if args.predictions else demo.demo_prediction_files()
    models = load_prediction_files(prediction_files, args.model_names)
    needs_file = args.cohort in ("chexpert", "csv")
    if needs_file and args.cohort_file is None:
        raise CxrfailInputError(f"--cohort {args.cohort} needs --cohort-file", fix="Pass the cohort CSV")
    if args.cohort == "demo":
        # The demo cohort is the test split the shared files cover, whatever predictions are analysed against it.
        cohort = demo.load_demo_cohort(None if args.predictions else models)
    elif args.cohort == "nih":
        ids = sorted({i for model in models for i in model.probabilities.index})
        cohort = cohorts.load_nih(args.cohort_file, image_ids=ids, image_dir=args.images, devices_csv=args.devices)
    elif args.cohort == "chexpert":
        cohort = cohorts.load_chexpert(args.cohort_file, uncertain_policy=args.uncertain, unit=args.unit)
    else:
        cohort = cohorts.load_generic_csv(args.cohort_file, _parse_column_map(args.column_map),
                                          uncertain_policy=args.uncertain, image_dir=args.images)
    inputs = [*prediction_files, *cohort.sources]
    return cohort, models, inputs


def _analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cxrfail.analysis.pipeline import AnalysisConfig, run_analysis
    from cxrfail.findings import COMPETITION_FINDINGS, canonical_finding
    from cxrfail.ray_cluster import resolve_ray_address
    from cxrfail.report import write_report

    try:
        findings = tuple(canonical_finding(f) for f in args.findings) if args.findings else COMPETITION_FINDINGS
    except KeyError as exc:
        raise CxrfailInputError(str(exc.args[0]), fix="Use NIH or CheXpert finding names") from None
    config = AnalysisConfig(
        findings=findings, threshold_method=args.threshold, fixed_threshold=args.fixed_threshold,
        calibration_fraction=args.calibration_fraction, seed=args.seed, extra_subgroups=tuple(args.subgroups),
        min_subgroup_n=args.min_subgroup_n, learners=tuple(args.learners), feature_sets=tuple(args.feature_sets),
        n_folds=args.folds, n_bootstrap=args.bootstrap, min_overlap=args.min_overlap,
    )
    print("loading cohort and predictions ...", file=sys.stderr)
    cohort, models, inputs = _load_inputs(args)
    ray_address = resolve_ray_address(args.ray)
    with tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_description(message)
            bar.update(round(fraction * 100) - bar.n)

        result = run_analysis(cohort, models, config, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                              progress=progress, ray_address=ray_address)
    print("writing tables and figures ...", file=sys.stderr)
    write_report(result, args.out, inputs, figures=not args.no_figures, cache_dir=args.cache_dir,
                 use_cache=not args.no_cache)
    print(f"report written to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxrfail", description="Failure analysis of chest X-ray classifiers.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_analyze(subparsers)
    from cxrfail.inference.cli import add_inference_commands

    add_inference_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CxrfailInputError as exc:
        print(f"cxrfail: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("cxrfail: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
