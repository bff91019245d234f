"""A profile for people: a text summary for the terminal and a standalone HTML report (inline SVG charts,
inline CSS, no script and no link, so it opens offline and sends no request)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from mlstack.profile import charts
from mlstack.profile.schema import FeatureProfile, Profile, TargetRelation

_TEMPLATES = Environment(
    loader=PackageLoader("mlstack.profile", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class FeatureView:
    """One feature's section of the report."""

    profile: FeatureProfile
    facts: list[tuple[str, str]]
    distribution: charts.HBars | charts.Columns | None
    relation: charts.HBars | None
    relation_title: str
    strength: str


def render_html(profile: Profile) -> str:
    return _TEMPLATES.get_template("report.html.j2").render(
        p=profile,
        target_chart=_values_chart(profile.target),
        target_facts=_facts(profile.target),
        ranking=_ranking(profile),
        features=[_view(profile, f) for f in profile.features],
        heatmaps=_heatmaps(profile),
    )


def summary(profile: Profile) -> str:
    """What the terminal shows: the target, then one line per feature, strongest relation first."""
    lines = [
        f"{profile.source}: {profile.rows:,} rows, {len(profile.features)} features, "
        f"target {profile.target.name} ({profile.task}: {_target_text(profile)})",
        f"{'feature':<24} {'type':<8} {'missing':>8} {'distinct':>9}  {'values':<34} {'MI':>7}  relation",
    ]
    for feature in _by_information(profile):
        counts = f"{feature.type:<8} {feature.missing_share:>8.1%} {feature.distinct:>9,}"
        values = f"{_values_text(feature)[:34]:<34} {_mi_text(feature.target):>7}"
        lines.append(f"{feature.name[:24]:<24} {counts}  {values}  {_strength(feature.target)}")
    pairs = _strong_pairs(profile)
    if pairs:
        lines.append("strongest correlations (Pearson): " + ", ".join(pairs))
    return "\n".join(lines)


def _by_information(profile: Profile) -> list[FeatureProfile]:
    def mi(feature: FeatureProfile) -> float:
        return feature.target.mutual_information or 0.0 if feature.target else 0.0

    return sorted(profile.features, key=lambda f: (-mi(f), f.name))


def _target_text(profile: Profile) -> str:
    target = profile.target
    if target.categories is None:
        return _values_text(target)
    counts = target.categories.counts
    return ", ".join(f"{c} {n / profile.rows:.1%}" for c, n in counts.items())


def _values_text(feature: FeatureProfile) -> str:
    if feature.stats is not None:
        s = feature.stats
        return f"{s.min:.4g} .. {s.quantiles['0.5']:.4g} .. {s.max:.4g}"
    if feature.categories and feature.categories.counts:
        name, n = next(iter(feature.categories.counts.items()))
        return f"{name} {n / max(1, feature.count):.0%}"
    return "all missing"


def _mi_text(relation: TargetRelation | None) -> str:
    mi = relation.mutual_information if relation else None
    return "n/a" if mi is None else f"{mi:.4f}"


def _strength(relation: TargetRelation | None) -> str:
    if relation is None:
        return ""
    named = [
        ("Cramér's V", relation.cramers_v),
        ("η", relation.correlation_ratio),
        ("r", relation.pearson),
        ("ρ", relation.spearman),
    ]
    return " · ".join(f"{name} {value:+.3f}" for name, value in named if value is not None)


def _strong_pairs(profile: Profile, count: int = 3) -> list[str]:
    if profile.correlations is None:
        return []
    names, matrix = profile.correlations.features, profile.correlations.pearson
    pairs = [
        (abs(v), f"{names[i]} ~ {names[j]} {v:+.2f}")
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
        if j > i and v is not None
    ]
    return [text for _, text in sorted(pairs, key=lambda p: -p[0])[:count]]


def _facts(feature: FeatureProfile) -> list[tuple[str, str]]:
    facts = [
        ("type", feature.type),
        ("present", f"{feature.count:,}"),
        ("missing", f"{feature.missing:,} ({feature.missing_share:.1%})"),
        ("distinct", f"{feature.distinct:,}"),
    ]
    if feature.stats is not None:
        s = feature.stats
        facts += [("min", f"{s.min:.6g}"), ("max", f"{s.max:.6g}"), ("mean", f"{s.mean:.6g}")]
        facts += [("std", "n/a" if s.std is None else f"{s.std:.6g}")]
        facts += [(f"{float(q):.0%}", f"{v:.6g}") for q, v in s.quantiles.items()]
    grouped = feature.categories
    if grouped is not None and grouped.other_distinct:
        facts.append(("other", f"{grouped.other_distinct} rare categories, {grouped.other:,} rows"))
    return facts


def _values_chart(feature: FeatureProfile) -> charts.HBars | charts.Columns | None:
    if feature.distribution is not None:
        return charts.histogram(feature.distribution.edges, feature.distribution.counts)
    if feature.categories is not None:
        counts = dict(feature.categories.counts)
        if feature.categories.other:
            counts["(other)"] = feature.categories.other
        return charts.hbars(list(counts), list(counts.values()))
    return None


def _view(profile: Profile, feature: FeatureProfile) -> FeatureView:
    relation = feature.target
    chart, title = (None, "") if relation is None else _relation_chart(profile, relation)
    return FeatureView(feature, _facts(feature), _values_chart(feature), chart, title, _strength(relation))


def _relation_chart(profile: Profile, relation: TargetRelation) -> tuple[charts.HBars, str]:
    shown = [i for i, n in enumerate(relation.rows) if n > 0]
    labels = [relation.bins[i] for i in shown]
    if relation.class_shares is not None and profile.focus_class is not None:
        shares = relation.class_shares[profile.focus_class]
        counts = profile.target.categories.counts if profile.target.categories else {}
        overall = counts.get(profile.focus_class, 0) / max(1, profile.rows)
        chart = charts.hbars(labels, [shares[i] for i in shown], "{:.1%}", overall, f"overall {overall:.1%}")
        return chart, f"Share of {profile.target.name} = {profile.focus_class}"
    means = relation.target_mean or []
    overall_mean = profile.target.stats.mean if profile.target.stats else None
    text = "" if overall_mean is None else f"overall {overall_mean:.4g}"
    return charts.hbars(labels, [means[i] for i in shown], "{:,.4g}", overall_mean, text), (
        f"Mean {profile.target.name}"
    )


def _ranking(profile: Profile) -> charts.HBars:
    ranked = _by_information(profile)
    values = [f.target.mutual_information if f.target else None for f in ranked]
    return charts.hbars([f.name for f in ranked], values, "{:.4f}")


def _heatmaps(profile: Profile) -> list[tuple[str, Any]]:
    found = profile.correlations
    if found is None:
        return []
    return [
        ("Pearson", charts.heatmap(found.features, found.pearson)),
        ("Spearman", charts.heatmap(found.features, found.spearman)),
    ]
