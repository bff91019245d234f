"""Recommend: pick or create a user by liking films, see their top-10 and the films behind each ("because you
liked"), add plays or likes, clean, delete."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import streamlit as st

import state
from gateway import GatewayError

st.title("Recommend")
client = state.client()
try:
    recommenders = [m["name"] for m in state.models() if m["task"] == "recommendation"]
except GatewayError as exc:
    st.error(str(exc))
    st.stop()
if not recommenders:
    st.info("No recommendation model is served. Train one: `mlstack train --demo recommend`.")
    st.stop()
if not client.has_users_key:
    st.warning("User data needs a key of scope users (FRONTEND_USERS_KEY); the start command sets one.")
    st.stop()

model = st.selectbox("Model", recommenders, key="rec-model")
manifest = state.manifest(model)
catalogue = pd.DataFrame(manifest["recommender"]["items"]).set_index("item_id")
labels = {i: f"{r.title} ({r.genre}, {r.year})" for i, r in catalogue.iterrows()}


def pick(label: str, key: str) -> list[str]:
    return st.multiselect(label, list(labels), format_func=labels.__getitem__, key=key)


def events(items: list[str], kind: str) -> list[dict[str, Any]]:
    return [{"event_id": uuid.uuid4().hex, "item_id": item, "type": kind} for item in items]


def act(action: Any, done: str) -> None:
    try:
        action()
    except GatewayError as exc:
        st.error(str(exc))
        return
    st.success(done)


def because_you_liked(items: list[dict[str, Any]]) -> None:
    """Each recommendation with the films behind it: the user's own, or a preferred genre's popular ones."""
    lines = [
        f"- **{catalogue.at[item['item'], 'title']}**: {', '.join(reason(b) for b in item['because'])}"
        for item in items
        if item["because"]
    ]
    if lines:
        st.markdown("**Because you liked**\n\n" + "\n".join(lines))


def reason(because: dict[str, Any]) -> str:
    film = catalogue.loc[because["item"]]
    if because["source"] == "genre":
        return f"{film.title} ({because['share']:.0%}, a popular {film.genre} film)"
    return f"{film.title} ({because['share']:.0%})"


left, right = st.columns([1, 2])
with left:
    st.subheader("User")
    user_id = st.text_input("User id", key="rec-user", placeholder="e.g. ada")
    liked = pick("Films they like (to create the user)", "rec-create-items")
    if st.button("Create user", key="rec-create", disabled=not user_id):
        act(lambda: client.create_user(user_id, events(liked, "like")), f"Created {user_id}")
    if user_id:
        added = pick("Films to add", "rec-add-items")
        kind = st.radio("As", ["like", "play"], horizontal=True, key="rec-add-kind")
        if st.button("Add to history", key="rec-add", disabled=not added):
            act(lambda: client.add_events(user_id, events(added, kind)), f"Added {len(added)} {kind}(s)")
        clean, delete = st.columns(2)
        if clean.button("Clean history", key="rec-clean"):
            act(lambda: client.clear_history(user_id), "History cleaned")
        if delete.button("Delete user", key="rec-delete"):
            act(lambda: client.delete_user(user_id), f"Deleted {user_id}")

with right:
    if user_id:
        try:
            answer = client.recommend(model, user_id, explain=True)
        except GatewayError as exc:
            st.error(str(exc))
            st.stop()
        body = answer.body
        source = body["sources"][0]
        st.subheader(f"Top 10 for {user_id}" + (" (popular: no history)" if source == "popular" else ""))
        top = catalogue.loc[body["predictions"][0], ["title", "genre", "year"]].assign(
            score=body["scores"][0]
        )
        st.dataframe(top.reset_index(), hide_index=True, width="stretch")
        because_you_liked(body["explanations"][0]["items"])
        facts = st.columns(3)
        facts[0].metric("Source", source)
        facts[1].metric("Cache (X-Cache)", answer.headers.get("X-Cache", "?"))
        facts[2].metric("Round trip", f"{answer.latency_ms:.0f} ms")
        try:
            user = client.user(user_id)
        except GatewayError:
            user = None  # not created yet: the list above is the popular one
        if user is not None:
            st.caption(f"{user['event_count']} events; latest first")
            latest = pd.DataFrame(user["latest_events"])
            if not latest.empty:
                latest["title"] = latest["item_id"].map(catalogue["title"])
                st.dataframe(latest[["title", "type", "value"]], hide_index=True, width="stretch")
