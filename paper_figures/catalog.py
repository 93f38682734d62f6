"""What each figure shows and where its numbers come from (used by make_all, the report and
docs/figures.md). Pure data: importing it draws nothing."""

from __future__ import annotations

from dataclasses import dataclass

SYNTHETIC_NOTE = "Synthetic data (SynthCXR-LT): pipeline demonstration, not a clinical result"


@dataclass(frozen=True)
class FigureInfo:
    name: str
    title: str
    caption: str
    sources: tuple[str, ...]


FIGURES: tuple[FigureInfo, ...] = (
    FigureInfo(
        "class_split",
        "Class distribution and split",
        "Positive images per class in the train, validation and test parts (stacked), and the "
        "share of each class's positives in each part (stratification check).",
        ("tables/class_distribution.csv",),
    ),
    FigureInfo(
        "training_curves",
        "Training curves",
        "Loss and accuracy per epoch for training and validation: mean over runs (seeds × "
        "folds), band from the lowest to the highest run.",
        ("runs/*/history.parquet",),
    ),
    FigureInfo(
        "confusion",
        "Confusion matrices",
        "Test-set counts per true and predicted class; colour and percentage are the share "
        "of the true class.",
        ("tables/confusion.csv",),
    ),
    FigureInfo(
        "sensitivity",
        "Per-layer pruning sensitivity",
        "Change of the metric when one layer alone is pruned by the given fraction, relative "
        "to the unpruned model (measured on the validation part).",
        ("tables/sensitivity.csv",),
    ),
    FigureInfo(
        "compressed_vs_baseline",
        "Baseline vs compressed",
        "Each metric per variant with its interval (left) and the paired change against the "
        "baseline with its interval and multiplicity-adjusted p-value (right).",
        ("tables/summary.csv",),
    ),
    FigureInfo(
        "study_a_accuracy",
        "Accuracy per variant",
        "Test accuracy with its interval, the number of correctly classified images and "
        "McNemar's paired test against the baseline.",
        ("tables/study_a.csv",),
    ),
    FigureInfo(
        "metric_vs_sparsity",
        "Overall metric vs sparsity",
        "Macro metrics against sparsity, one line per pruning family (e.g. L1 magnitude vs "
        "random), with the interval as a band.",
        ("tables/metric_vs_sparsity.csv",),
    ),
    FigureInfo(
        "forgetting_curves",
        "Forgettability curves",
        "Median relative change Δ of the per-class metric against sparsity for the most "
        "frequent class, the rarest and two in between (with intervals over seeds), and for "
        "every class coloured by its log training frequency; dashed line: forgotten threshold.",
        ("tables/forgetting_curves.csv", "tables/forgetting_summary.csv"),
    ),
    FigureInfo(
        "frequency_vs_forgetting",
        "Frequency vs forgettability",
        "Log training frequency against the sparsity at which a class is forgotten (open "
        "circles: never forgotten) and against Δ at the highest sparsity, with Pearson r and "
        "Spearman ρ, their intervals and p-values.",
        ("tables/forgetting_summary.csv", "tables/correlations.csv"),
    ),
    FigureInfo(
        "fcd",
        "Forgettability-curve dissimilarity",
        "FCD of each class pair against |Δ log frequency| and against the co-occurrence "
        "IoU^(1/4), annotated with the Mantel test (pairs share classes, so they are not "
        "independent observations).",
        ("tables/fcd_pairs.csv", "tables/correlations.csv"),
    ),
    FigureInfo(
        "weights_histogram",
        "Weight magnitudes",
        "Histogram of the baseline's absolute weights on log-spaced bins, with the global "
        "magnitude-pruning threshold of each sparsity.",
        ("tables/weights_histogram.csv", "tables/weights_thresholds.csv"),
    ),
    FigureInfo(
        "pie_prevalence",
        "PIE class prevalence",
        "Prevalence of each class among pruning-identified exemplars divided by its "
        "prevalence among the other images (log scale; 1 = no difference); highlighted: "
        "adjusted p < 0.05.",
        ("tables/pie_prevalence.csv",),
    ),
    FigureInfo(
        "pie_findings",
        "PIE findings per image",
        "Share of images with 0, 1, 2, 3 or 4+ findings among PIEs divided by the share among "
        "the other images (log scale).",
        ("tables/pie_findings.csv",),
    ),
    FigureInfo(
        "tradeoff",
        "Accuracy–cost trade-off",
        "Metric (with interval) against CPU latency at batch 32 (or MACs when no latency was "
        "measured) and against model size; the Pareto front joins the variants no other "
        "variant beats on both.",
        ("tables/size_latency.csv",),
    ),
)

BY_NAME = {f.name: f for f in FIGURES}
