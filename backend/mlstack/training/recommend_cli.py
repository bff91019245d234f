"""`mlstack train --demo recommend`: the recommendation task from the training command."""

from __future__ import annotations

import argparse

import pandas as pd
from threadpoolctl import threadpool_limits

from mlstack.store.manifest import MODEL_NAME
from mlstack.store.model_store import ModelStore
from mlstack.training.collected import collected_events
from mlstack.training.interactions import demo_interactions
from mlstack.training.recommend import (
    NotBetterThanPopularity,
    RecommendRequest,
    train_and_publish_recommender,
)

RECOMMEND_DEMO = "recommend"
MIN_USERS = 500


def train_recommender(args: argparse.Namespace, store: ModelStore) -> int:
    model = args.model or RECOMMEND_DEMO
    if not MODEL_NAME.match(model):
        print(f"mlstack: model name {model!r} must match {MODEL_NAME.pattern}")
        return 2
    if args.if_empty and model in store.models() and store.current(model):
        print(f"{model}: already has version {store.current(model)}; nothing to do")
        return 0
    if args.rows is not None and args.rows < MIN_USERS:
        print(f"mlstack: --rows (users) must be at least {MIN_USERS}")
        return 2
    demo = demo_interactions(n_users=args.rows or 20_000, seed=args.seed)
    events, source, description = demo.events, RECOMMEND_DEMO, demo.description
    if args.users_redis:
        live = collected_events(args.users_redis, set(demo.items["item_id"]))
        events = live if args.collected_only else pd.concat([demo.events, live], ignore_index=True)
        source = "collected" if args.collected_only else f"{RECOMMEND_DEMO}+collected"
        description += f"; plus {len(live)} interactions collected from the stack's users"
        print(f"read {len(live)} collected interactions of {live['user_id'].nunique()} users")
    request = RecommendRequest(
        model=model,
        items=demo.items,
        events=events,
        source=source,
        description=description,
        seed=args.seed,
        promote=not args.no_promote,
    )
    print(f"training {model} (recommendation) on {request.source}: {len(events)} interactions")
    try:
        with threadpool_limits(limits=args.threads):
            manifest = train_and_publish_recommender(request, store)
    except NotBetterThanPopularity as exc:
        print(f"not published: {exc}")
        return 1
    metrics = manifest.metrics
    baseline = metrics["baseline_popularity"]
    print(
        f"published {model} version {manifest.version} ({manifest.training.estimator} "
        f"{manifest.training.params}, {manifest.training.seconds}s)"
        + (" and made it CURRENT" if request.promote else "")
    )
    for name in ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "coverage_at_10"):
        print(f"  held-out {name}: {metrics[name]:.4f} (popularity {baseline[name]:.4f})")
    return 0
