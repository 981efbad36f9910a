"""The ``cxrfail`` command: ``cxrfail analyze`` writes the full report; inference commands come from
`cxrfail.inference.cli`. Input errors exit with status 2 and one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrfail.errors import CxrfailInputError, ReportWriteError

EXIT_INPUT_ERROR = 2
# The integer settings of the slice search: (AnalysisConfig field, help); the flag is the field, dashed.
SLICE_COUNT_SETTINGS = (
    ("slice_top_k", "candidates confirmed per pair and error kind"),
    ("slice_min_rows", "fewest calibration rows of a slice"),
    ("slice_min_patients", "fewest calibration patients of a slice"),
    ("slice_max_predicates", "most predicates in a slice"),
    ("slice_search_rows", "calibration rows the search sees; a patient sample beyond"),
)


def _add_analyze(subparsers: argparse._SubParsersAction) -> None:
    from cxrfail.analysis.config import (
        COHORT_KINDS,
        FEATURE_SETS,
        LEARNERS,
        SLICE_ERROR_KINDS,
        THRESHOLD_METHODS,
        UNCERTAIN_POLICIES,
        AnalysisConfig,
    )
    from cxrfail.ray_cluster import add_ray_option

    defaults = AnalysisConfig()
    parser = subparsers.add_parser(
        "analyze",
        help="run the whole failure analysis and write a report folder",
        description="With no arguments: the NIH demo cohort with every shared prediction file.",
    )
    cohort = parser.add_argument_group("cohort")
    cohort.add_argument(
        "--cohort",
        choices=list(COHORT_KINDS),
        default="demo",
        help="demo: NIH test split from ../shared (default); nih: NIH metadata (torchxrayvision's "
        "bundled copy unless --cohort-file); chexpert / csv: --cohort-file",
    )
    cohort.add_argument("--cohort-file", type=Path, help="the cohort CSV")
    cohort.add_argument(
        "--column-map",
        nargs="+",
        default=[],
        metavar="FIELD=COLUMN",
        help="for --cohort csv: image_id, patient_id, age, sex, view, image_path, or a finding",
    )
    cohort.add_argument(
        "--uncertain",
        choices=UNCERTAIN_POLICIES,
        default="zeros",
        help="CheXpert -1 labels: as zeros (default), as ones, or drop",
    )
    cohort.add_argument("--unit", choices=["study", "image"], default="study", help="CheXpert unit of analysis")
    cohort.add_argument("--images", type=Path, help="image folder (image paths must resolve inside it)")
    cohort.add_argument("--devices", type=Path, help="support-device reads CSV (NIH cohorts)")
    cohort.add_argument(
        "--reference-labels",
        type=Path,
        metavar="FILE",
        help="a second (expert) label set to audit the cohort's labels against: an id column and "
        "finding columns (1/0, YES/NO or blank); default for the demo: Google's 2019 labels",
    )
    cohort.add_argument(
        "--reference-column-map",
        nargs="+",
        default=[],
        metavar="FIELD=COLUMN",
        help="for --reference-labels: image_id=COLUMN and FINDING=COLUMN",
    )
    preds = parser.add_argument_group("predictions")
    preds.add_argument("--predictions", nargs="+", type=Path, help="prediction CSV files, one model each")
    preds.add_argument("--model-names", nargs="+", help="names for the models, in the order of the files")
    preds.add_argument(
        "--min-overlap",
        type=float,
        default=defaults.min_overlap,
        help="refuse a model with fewer of its ids in the cohort (default %(default)s)",
    )
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--findings", nargs="+", help="findings to analyse (default: the five competition tasks)")
    analysis.add_argument("--threshold", choices=THRESHOLD_METHODS, default=defaults.threshold_method)
    analysis.add_argument("--fixed-threshold", type=float, default=defaults.fixed_threshold)
    analysis.add_argument("--calibration-fraction", type=float, default=defaults.calibration_fraction)
    analysis.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(defaults.learners))
    analysis.add_argument("--feature-sets", nargs="+", choices=FEATURE_SETS, default=list(defaults.feature_sets))
    analysis.add_argument(
        "--identifier-feature-set",
        choices=FEATURE_SETS,
        default=None,
        help="the run's identifier for flipping, SHAP and the label audit; non-oracle, one of "
        f"--feature-sets (default {defaults.identifier_feature_set} when analysed, else the "
        "first non-oracle feature set)",
    )
    analysis.add_argument("--subgroups", nargs="+", default=[], help="further cohort columns to slice by")
    analysis.add_argument("--min-subgroup-n", type=int, default=defaults.min_subgroup_n)
    analysis.add_argument("--folds", type=int, default=defaults.n_folds)
    analysis.add_argument("--bootstrap", type=int, default=defaults.n_bootstrap, help="bootstrap replicates")
    analysis.add_argument("--seed", type=int, default=defaults.seed)
    slices = parser.add_argument_group("failure slices (searched on calibration, confirmed on test)")
    for field, text in SLICE_COUNT_SETTINGS:
        slices.add_argument(
            "--" + field.replace("_", "-"),
            type=int,
            default=getattr(defaults, field),
            help=text + " (default %(default)s)",
        )
    slices.add_argument(
        "--slice-error-kinds",
        nargs="+",
        choices=SLICE_ERROR_KINDS,
        default=list(defaults.slice_error_kinds),
        help="error kinds searched (default: %(default)s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, default=Path("out/report"), help="report folder (default %(default)s)")
    output.add_argument("--cache-dir", type=Path, help="on-disk cache (default $CXRFAIL_CACHE_DIR or ~/.cache/cxrfail)")
    output.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    output.add_argument("--no-figures", action="store_true", help="tables and manifest only")
    output.add_argument(
        "--per-row-csv",
        action="store_true",
        help="also write the per-row tables (outcomes, identifier scores, SHAP values) as CSV beside their "
        "Parquet files (gigabytes at CheXpert scale)",
    )
    add_ray_option(
        parser,
        "run the model × finding pairs as tasks on a Ray cluster (HOST:PORT or auto; default "
        "$CXRFAIL_RAY_ADDRESS); the tables equal a local run's",
    )
    parser.set_defaults(handler=_analyze)


def _identifier_feature_set(args) -> str:
    """The run's identifier feature set: as given, else the default when among ``--feature-sets``, else the first
    non-oracle one of them (the config refuses an oracle or absent one with a message naming the setting)."""
    from cxrfail.analysis.config import AnalysisConfig
    from cxrfail.analysis.identifiers.features import is_oracle

    default = AnalysisConfig().identifier_feature_set
    if args.identifier_feature_set:
        return args.identifier_feature_set
    if default in args.feature_sets:
        return default
    return next((name for name in args.feature_sets if not is_oracle(name)), default)


def _load_inputs(args: argparse.Namespace):
    from cxrfail import demo
    from cxrfail.analysis.config import FILE_COHORT_KINDS
    from cxrfail.cohort import load_cohort, parse_column_map
    from cxrfail.predictions import load_predictions

    if args.cohort in FILE_COHORT_KINDS and args.cohort_file is None:
        raise CxrfailInputError(f"--cohort {args.cohort} needs --cohort-file", fix="Pass the cohort CSV")
    prediction_files = list(args.predictions) if args.predictions else demo.demo_prediction_files()
    models = load_predictions(prediction_files, args.model_names)
    # The demo cohort is the test split the shared files cover, whatever predictions are analysed against it.
    cohort = load_cohort(
        args.cohort,
        args.cohort_file,
        column_map=parse_column_map(args.column_map, "--column-map"),
        uncertain_policy=args.uncertain,
        unit=args.unit,
        image_dir=args.images,
        devices_csv=args.devices,
        prediction_ids=sorted({i for model in models for i in model.probabilities.index}),
    )
    inputs = [*prediction_files, *cohort.sources]
    return cohort, models, inputs


def _load_reference(args: argparse.Namespace, cohort):
    """The reference labels of ``--reference-labels`` (Google's 2019 labels for the demo cohort), matched to the
    cohort's rows; None when there are none."""
    from cxrfail import demo
    from cxrfail.cohort import parse_column_map
    from cxrfail.reference import load_reference_labels, match_reference

    if args.reference_labels is not None:
        column_map = parse_column_map(args.reference_column_map, "--reference-column-map")
        return match_reference(load_reference_labels(args.reference_labels, column_map=column_map), cohort)
    if args.reference_column_map:
        raise CxrfailInputError("--reference-column-map needs --reference-labels", fix="Pass the reference file")
    return demo.load_demo_reference_labels(cohort) if args.cohort == "demo" else None


def _analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cxrfail.analysis.config import AnalysisConfig
    from cxrfail.analysis.runner import run_analysis
    from cxrfail.files import staged_folder
    from cxrfail.findings import COMPETITION_FINDINGS, canonical_finding
    from cxrfail.ray_cluster import resolve_ray_address
    from cxrfail.report import write_report

    try:
        findings = tuple(canonical_finding(f) for f in args.findings) if args.findings else COMPETITION_FINDINGS
    except KeyError as exc:
        raise CxrfailInputError(str(exc.args[0]), fix="Use NIH or CheXpert finding names") from None
    config = AnalysisConfig(
        findings=findings,
        threshold_method=args.threshold,
        fixed_threshold=args.fixed_threshold,
        calibration_fraction=args.calibration_fraction,
        seed=args.seed,
        extra_subgroups=tuple(args.subgroups),
        min_subgroup_n=args.min_subgroup_n,
        learners=tuple(args.learners),
        feature_sets=tuple(args.feature_sets),
        identifier_feature_set=_identifier_feature_set(args),
        n_folds=args.folds,
        n_bootstrap=args.bootstrap,
        min_overlap=args.min_overlap,
        slice_error_kinds=tuple(args.slice_error_kinds),
        **{field: getattr(args, field) for field, _ in SLICE_COUNT_SETTINGS},
    )
    print("loading cohort and predictions ...", file=sys.stderr)
    cohort, models, inputs = _load_inputs(args)
    reference = _load_reference(args, cohort)
    if reference is not None:
        inputs.extend(reference.sources)
        print(f"reference labels: {reference.name}, {reference.selection}", file=sys.stderr)
    ray_address = resolve_ray_address(args.ray)
    with tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}") as bar:

        def progress(fraction: float, message: str) -> None:
            bar.set_description(message)
            bar.update(round(fraction * 100) - bar.n)

        result = run_analysis(
            cohort,
            models,
            config,
            reference=reference,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            progress=progress,
            ray_address=ray_address,
            keep_workers=False,
        )
    for (model, finding), reason in result.refused.items():
        print(f"cxrfail: {model} · {finding} {reason}", file=sys.stderr)  # the reason reads "refused: ..."
    for pair in result:
        for warning in pair.warnings:
            print(f"cxrfail: warning {pair.model} · {pair.finding}: {warning}", file=sys.stderr)
    if not result.pairs:
        raise CxrfailInputError(
            "every model × finding pair was refused (see the lines above)",
            fix="Choose findings with positives and negatives in both splits, or a larger cohort",
        )
    print("writing tables and figures ...", file=sys.stderr)
    try:
        with staged_folder(args.out) as staging:  # a report is complete or absent, never half written
            write_report(
                result,
                staging,
                inputs,
                figures=not args.no_figures,
                cache_dir=args.cache_dir,
                use_cache=not args.no_cache,
                per_row_csv=args.per_row_csv,
            )
    except OSError as exc:
        raise ReportWriteError(
            f"the report could not be written ({exc.strerror or type(exc).__name__}); nothing was left there",
            path=args.out,
            fix="Free disk space or choose another --out folder",
        ) from None
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
    from cxrfail.files import use_private_temp_root

    use_private_temp_root()  # temporary patient data goes with this process, SIGTERM included
    try:
        return args.handler(args)
    except CxrfailInputError as exc:
        print(f"cxrfail: error: {exc}", file=sys.stderr)
        if getattr(exc, "connection_left_hanging", False):  # a Ray connection cannot be cancelled: end here,
            from cxrfail.files import release_private_temp_root  # before its retries print more lines

            release_private_temp_root()
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(EXIT_INPUT_ERROR)
        return EXIT_INPUT_ERROR
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"cxrfail: error: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("cxrfail: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
