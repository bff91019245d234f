"""Recommendations and user data through the real stack: gateway, 2 replicas, the cache and the data Redis."""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from documented import Documented
from mlstack.cli import main as mlstack
from mlstack.store.model_store import ModelStore
from mlstack.training.interactions import demo_interactions
from stack.native import NativeStack
from stacks import gateway_entry, running_stack
from waiting import wait_until

pytestmark = pytest.mark.stack
CAP = 40


@pytest.fixture(scope="module")
def rec_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    store = tmp_path_factory.mktemp("rec-store")
    assert mlstack(["train", "--demo", "recommend", "--rows", "3000", "--store-dir", str(store)]) == 0
    run_dir = tmp_path_factory.mktemp("rec-run")
    env = {"BACKEND_USERS_MAX_EVENTS": str(CAP)}
    with running_stack(run_dir, store, replicas=2, with_ui=False, replica_env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def genre_of(rec_stack: NativeStack) -> dict[str, str]:
    manifest = api(rec_stack, "GET", "/v1/models/recommend").json()
    return {item["item_id"]: item["genre"] for item in manifest["recommender"]["items"]}


DOCUMENTS: dict[str, Documented] = {}
"""Each stack's OpenAPI document (served through its gateway), to check every answer against."""


def api(
    stack: NativeStack, method: str, path: str, scope: str | None = "users", **kwargs: Any
) -> httpx.Response:
    """A request through the gateway; its answer must be as the OpenAPI document says."""
    url = stack.gateway_url
    if url not in DOCUMENTS:
        DOCUMENTS[url] = Documented(httpx.get(f"{url}/openapi.json", timeout=20).json())
    headers = {"X-API-Key": stack.key(scope)} if scope else {}
    headers.update(kwargs.pop("headers", {}))
    response = httpx.request(method, f"{url}{path}", headers=headers, timeout=20, **kwargs)
    DOCUMENTS[url].check(response)
    return response


def recommend(stack: NativeStack, user_id: str, k: int = 10, scope: str = "predict") -> httpx.Response:
    body = {"instances": [{"user_id": user_id, "k": k}]}
    return api(stack, "POST", "/v1/models/recommend:predict", scope, json=body)


def of_genre(genre_of: dict[str, str], genre: str, n: int, skip: int = 0) -> list[str]:
    return [item for item, g in genre_of.items() if g == genre][skip : skip + n]


def likes(items: list[str], prefix: str = "") -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}{item}", "item_id": item, "type": "like"} for item in items]


def new_user(stack: NativeStack, **body: Any) -> str:
    user_id = f"test-{uuid.uuid4().hex[:12]}"
    response = api(stack, "POST", "/v1/users", json={"user_id": user_id, **body})
    assert response.status_code == 201, response.text
    return user_id


def genres(genre_of: dict[str, str], response: httpx.Response) -> Counter[str]:
    assert response.status_code == 200, response.text
    return Counter(genre_of[item] for item in response.json()["predictions"][0])


def test_a_new_user_who_likes_one_genre_gets_mostly_that_genre(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    liked = of_genre(genre_of, "Horror", 5)
    user_id = new_user(rec_stack, events=likes(liked))
    share = sum(g == "Horror" for g in genre_of.values()) / len(genre_of)

    response = recommend(rec_stack, user_id)
    body = response.json()

    assert genres(genre_of, response)["Horror"] >= 7 > 10 * share * 3
    assert body["sources"] == ["personal"]
    assert len(body["scores"][0]) == 10
    assert body["scores"][0] == sorted(body["scores"][0], reverse=True)
    assert not set(liked) & set(body["predictions"][0])  # seen items are left out
    assert response.headers["X-Cache"] == "MISS"
    assert recommend(rec_stack, user_id).headers["X-Cache"] == "HIT"


def test_new_interests_and_events_move_the_list_in_the_very_next_request(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(rec_stack, events=likes(of_genre(genre_of, "Horror", 5)))
    assert genres(genre_of, recommend(rec_stack, user_id)).most_common(1)[0][0] == "Horror"
    wait_until(lambda: recommend(rec_stack, user_id).headers["X-Cache"] == "HIT", what="the list cached")
    for _ in range(5):  # the same body again and again: a replica must not remember the answer itself
        assert recommend(rec_stack, user_id).headers["X-Cache"] == "HIT"

    put = api(rec_stack, "PUT", f"/v1/users/{user_id}", json={"profile": {"genres": ["Documentary"]}})
    posted = api(
        rec_stack,
        "POST",
        f"/v1/users/{user_id}/events",
        json={"events": likes(of_genre(genre_of, "Documentary", 8))},
    )
    after = recommend(rec_stack, user_id)

    assert put.status_code == 200
    assert put.json()["profile"] == {"genres": ["Documentary"]}
    assert posted.json()["added"] == 8
    assert after.headers["X-Cache"] == "MISS"
    assert genres(genre_of, after)["Documentary"] >= 6


def test_a_cleaned_history_falls_back_to_the_popular_items(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(rec_stack, events=likes(of_genre(genre_of, "Musical", 5)))
    assert recommend(rec_stack, user_id).json()["sources"] == ["personal"]

    cleaned = api(rec_stack, "DELETE", f"/v1/users/{user_id}/history")
    after = recommend(rec_stack, user_id).json()
    unknown = recommend(rec_stack, "nobody-has-this-id").json()

    assert cleaned.status_code == 204
    assert after["sources"] == ["popular"]
    assert after["predictions"] == unknown["predictions"]
    assert unknown["sources"] == ["popular"]
    assert api(rec_stack, "GET", f"/v1/users/{user_id}").json()["event_count"] == 0


def keys_of(port: int, user_id: str) -> list[bytes]:
    with redis.Redis(port=port) as client:
        return list(client.scan_iter(match=f"*{user_id}*", count=1000))


def test_an_erased_user_leaves_no_key_in_either_redis(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(
        rec_stack, profile={"genres": ["Comedy"]}, events=likes(of_genre(genre_of, "Crime", 3))
    )
    assert recommend(rec_stack, user_id).status_code == 200
    recommend(rec_stack, user_id, k=5)
    assert keys_of(rec_stack.redis_port, user_id)  # cached recommendations name the user
    assert keys_of(rec_stack.data_redis_port, user_id)

    erased = api(rec_stack, "DELETE", f"/v1/users/{user_id}")

    assert erased.status_code == 204
    assert api(rec_stack, "GET", f"/v1/users/{user_id}").status_code == 404
    assert keys_of(rec_stack.redis_port, user_id) == []
    assert keys_of(rec_stack.data_redis_port, user_id) == []
    assert recommend(rec_stack, user_id).json()["sources"] == ["popular"]


def explain(stack: NativeStack, user_id: str, k: int = 10) -> httpx.Response:
    body = {"instances": [{"user_id": user_id, "k": k}]}
    return api(stack, "POST", "/v1/models/recommend:explain", "predict", json=body)


def test_the_because_items_of_a_one_genre_history_come_from_that_history(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    liked = of_genre(genre_of, "Horror", 5, skip=5)
    user_id = new_user(rec_stack, events=likes(liked))

    explained = explain(rec_stack, user_id)
    predicted = recommend(rec_stack, user_id).json()

    body = explained.json()
    (why,) = body["explanations"]
    assert why["method"] == "recommender_items"
    assert [item["item"] for item in why["items"]] == predicted["predictions"][0] == body["predictions"][0]
    for item in why["items"]:
        assert item["because"], f"{item['item']} has no because"
        assert {b["item"] for b in item["because"]} <= set(liked)
        assert {b["source"] for b in item["because"]} == {"history"}
        shares = [b["share"] for b in item["because"]]
        assert shares == sorted(shares, reverse=True)
        assert 0 < sum(shares) <= 1 + 1e-9


def test_an_erased_user_leaves_no_cached_explanation(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(rec_stack, events=likes(of_genre(genre_of, "Western", 4)))
    assert explain(rec_stack, user_id).headers["X-Cache"] == "MISS"
    wait_until(lambda: explain(rec_stack, user_id).headers["X-Cache"] == "HIT", 5.0, "a cached explanation")
    cached = keys_of(rec_stack.redis_port, user_id)

    erased = api(rec_stack, "DELETE", f"/v1/users/{user_id}")

    assert cached
    assert all(key.startswith(b"mlstack:rec:explain:recommend:") for key in cached)
    assert erased.status_code == 204
    assert keys_of(rec_stack.redis_port, user_id) == []
    after = explain(rec_stack, user_id).json()
    assert after["sources"] == ["popular"]
    assert all(item["because"] == [] for item in after["explanations"][0]["items"])


def test_status_codes_and_json_errors(rec_stack: NativeStack, genre_of: dict[str, str]) -> None:
    item = next(iter(genre_of))
    user_id = f"codes-{uuid.uuid4().hex[:8]}"
    created = api(rec_stack, "POST", "/v1/users", json={"user_id": user_id})
    cases = {
        "conflict": (api(rec_stack, "POST", "/v1/users", json={"user_id": user_id}), 409),
        "unknown user": (api(rec_stack, "GET", "/v1/users/nobody-here"), 404),
        "unknown user put": (api(rec_stack, "PUT", "/v1/users/nobody-here", json={"profile": {}}), 404),
        "unknown user events": (
            api(rec_stack, "POST", "/v1/users/nobody-here/events", json={"events": likes([item])}),
            404,
        ),
        "unknown item": (
            api(rec_stack, "POST", f"/v1/users/{user_id}/events", json={"events": likes(["film-99999"])}),
            422,
        ),
        "bad type": (
            api(
                rec_stack,
                "POST",
                f"/v1/users/{user_id}/events",
                json={"events": [{"item_id": item, "type": "x"}]},
            ),
            422,
        ),
        "a genre that is no name": (
            api(rec_stack, "PUT", f"/v1/users/{user_id}", json={"profile": {"genres": [{"name": "Drama"}]}}),
            422,
        ),
        "bad rating": (
            api(
                rec_stack,
                "POST",
                f"/v1/users/{user_id}/events",
                json={"events": [{"item_id": item, "type": "rating", "value": 9}]},
            ),
            422,
        ),
        "no key": (api(rec_stack, "POST", "/v1/users", None, json={}), 401),
        "predict key writes": (api(rec_stack, "POST", "/v1/users", "predict", json={}), 403),
        "predict key deletes": (api(rec_stack, "DELETE", f"/v1/users/{user_id}", "predict"), 403),
    }

    assert created.status_code == 201
    assert created.headers["Location"] == f"/v1/users/{user_id}"
    for name, (response, status) in cases.items():
        assert response.status_code == status, name
        assert response.headers["Content-Type"].startswith("application/json"), name
        assert "error" in response.json(), name
    assert "film-99999" in cases["unknown item"][0].json()["error"]
    assert "events[0].type" in cases["bad type"][0].json()["error"]
    assert "profile.genres[0]" in cases["a genre that is no name"][0].json()["error"]
    assert api(rec_stack, "POST", "/v1/users", "admin", json={}).status_code == 201  # a generated id


def test_the_same_events_posted_twice_count_once(rec_stack: NativeStack, genre_of: dict[str, str]) -> None:
    user_id = new_user(rec_stack)
    events = {"events": likes(of_genre(genre_of, "Romance", 4), prefix="e-")}

    first = api(rec_stack, "POST", f"/v1/users/{user_id}/events", json=events).json()
    second = api(rec_stack, "POST", f"/v1/users/{user_id}/events", json=events).json()

    assert (first["added"], second["added"], second["duplicates"]) == (4, 0, 4)
    assert api(rec_stack, "GET", f"/v1/users/{user_id}").json()["event_count"] == 4


def test_a_write_is_reflected_by_the_other_replica_in_the_next_request(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(rec_stack)
    request_id = f"rec-write-{uuid.uuid4().hex[:8]}"
    write = api(
        rec_stack,
        "POST",
        f"/v1/users/{user_id}/events",
        json={"events": likes(of_genre(genre_of, "Animation", 5))},
        headers={"X-Request-ID": request_id},
    )
    upstream = gateway_entry(rec_stack, request_id)["upstream_addr"]
    other = next(r for r in rec_stack.replicas if not str(upstream).endswith(f":{r.port}"))

    response = httpx.post(
        f"http://127.0.0.1:{other.port}/v1/models/recommend:predict",
        json={"instances": [{"user_id": user_id}]},
        headers={"X-Gateway-Token": rec_stack.token},
        timeout=10,
    )

    assert write.status_code == 200
    assert genres(genre_of, response)["Animation"] >= 6


def test_a_visitor_gets_recommendations_from_a_list_of_items(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    liked = of_genre(genre_of, "Science fiction", 4)
    body = {"instances": [{"items": liked, "k": 10}, {"items": ["film-99999"]}]}

    bad = api(rec_stack, "POST", "/v1/models/recommend:predict", "predict", json=body)
    good = api(
        rec_stack,
        "POST",
        "/v1/models/recommend:predict",
        "predict",
        json={"instances": body["instances"][:1]},
    )

    assert bad.status_code == 422
    assert "instances[1].items[0]" in bad.json()["error"]
    assert genres(genre_of, good)["Science fiction"] >= 7


def test_v2_infer_takes_user_id_and_k_tensors(rec_stack: NativeStack, genre_of: dict[str, str]) -> None:
    user_id = new_user(rec_stack, events=likes(of_genre(genre_of, "Fantasy", 5)))
    body = {
        "inputs": [
            {"name": "user_id", "datatype": "BYTES", "shape": [2], "data": [user_id, "nobody-here"]},
            {"name": "k", "datatype": "INT64", "shape": [2], "data": [5, 5]},
        ]
    }

    response = api(rec_stack, "POST", "/v2/models/recommend/infer", "predict", json=body)
    outputs = {o["name"]: o for o in response.json()["outputs"]}

    assert response.status_code == 200, response.text
    assert outputs["predictions"]["shape"] == [2, 5]
    assert outputs["sources"]["data"] == ["personal", "popular"]
    assert sum(genre_of[i] == "Fantasy" for i in outputs["predictions"]["data"][:5]) >= 4


@pytest.mark.faults
def test_an_acknowledged_write_and_an_erasure_survive_a_sigkill_of_the_data_redis(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    kept = new_user(rec_stack)
    erased = new_user(rec_stack)
    posted = api(
        rec_stack, "POST", f"/v1/users/{kept}/events", json={"events": likes(of_genre(genre_of, "Drama", 3))}
    )
    deleted = api(rec_stack, "DELETE", f"/v1/users/{erased}")
    data_redis = rec_stack.process("redis-data")

    data_redis.signal(signal.SIGKILL)
    rec_stack.restart(data_redis)

    assert (posted.status_code, deleted.status_code) == (200, 204)
    got = api(rec_stack, "GET", f"/v1/users/{kept}")
    assert got.json().get("event_count") == 3, got.text
    assert api(rec_stack, "GET", f"/v1/users/{erased}").status_code == 404


def test_the_data_redis_is_durable_and_separate_from_the_cache(rec_stack: NativeStack) -> None:
    with redis.Redis(port=rec_stack.data_redis_port) as data, redis.Redis(port=rec_stack.redis_port) as cache:
        assert data.config_get("appendonly")["appendonly"] == "yes"
        assert data.config_get("appendfsync")["appendfsync"] == "always"
        assert data.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert cache.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    roles = {p["role"] for p in rec_stack.state()["processes"]}
    assert {"redis", "redis-data"} <= roles
    assert Path(rec_stack.options.run_dir / "redis-data").is_dir()


def test_retraining_learns_from_the_interactions_users_sent(
    rec_stack: NativeStack, genre_of: dict[str, str], tmp_path: Path
) -> None:
    new_user(rec_stack, events=likes(of_genre(genre_of, "Musical", 6, skip=10)))
    url = f"redis://127.0.0.1:{rec_stack.data_redis_port}/0"
    with redis.Redis(port=rec_stack.data_redis_port) as client:
        stored = sum(client.llen(key) for key in client.scan_iter(match="mlstack:user:*:events"))

    code = mlstack(
        ["train", "--demo", "recommend", "--rows", "3000", "--users-redis", url, "--store-dir", str(tmp_path)]
    )
    training = ModelStore(tmp_path).manifest("recommend", "1").training
    demo_rows = len(demo_interactions(n_users=3000).events)

    assert code == 0
    assert training.source == "recommend+collected"
    assert training.rows == demo_rows + stored


def test_a_history_keeps_the_newest_events_and_still_knows_the_dropped_ids(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    user_id = new_user(rec_stack)
    items = list(genre_of)[: CAP + 10]
    events = [{"event_id": f"n{i}", "item_id": item, "type": "play", "ts": i} for i, item in enumerate(items)]

    api(rec_stack, "POST", f"/v1/users/{user_id}/events", json={"events": events})
    again = api(rec_stack, "POST", f"/v1/users/{user_id}/events", json={"events": events[:5]}).json()
    user = api(rec_stack, "GET", f"/v1/users/{user_id}").json()

    assert user["event_count"] == CAP
    assert user["latest_events"][0]["event_id"] == f"n{CAP + 9}"  # newest first; the oldest were dropped
    assert again["added"] == 0  # a late retry of a dropped event is still recognised


@pytest.mark.faults
def test_without_the_data_redis_user_routes_are_503_and_known_users_get_popular_items_said_so(
    rec_stack: NativeStack, genre_of: dict[str, str]
) -> None:
    """Issue 19's choice: a recommendation for a known user answers at once from popularity, marked
    degraded and never cached, rather than failing; user-data routes answer 503 with Retry-After."""
    fan = new_user(rec_stack, events=likes(of_genre(genre_of, "Horror", 6)))
    data_redis = rec_stack.process("redis-data")
    data_redis.stop()
    try:
        read = api(rec_stack, "GET", "/v1/users/anyone")
        known = recommend(rec_stack, fan)
        visitor = api(
            rec_stack,
            "POST",
            "/v1/models/recommend:predict",
            "predict",
            json={"instances": [{"items": list(genre_of)[:3]}]},
        )
    finally:
        rec_stack.restart(data_redis)
    back = recommend(rec_stack, fan)

    assert read.status_code == 503
    assert read.headers["Retry-After"] == "2"
    assert "error" in read.json()
    assert known.status_code == 200
    assert known.headers["X-Degraded"].startswith("user data unavailable")
    assert known.headers["X-Cache"] == "BYPASS"
    assert known.json()["sources"] == ["popular"]
    assert visitor.status_code == 200
    assert "X-Degraded" not in back.headers
    assert back.json()["sources"] != ["popular"]  # personal again: the degraded answer was not kept


def test_a_recommendation_cached_just_after_an_erasure_is_swept_as_well(rec_stack: NativeStack) -> None:
    user_id = new_user(rec_stack)
    assert api(rec_stack, "DELETE", f"/v1/users/{user_id}").status_code == 204
    late = (
        f"mlstack:rec:recommend:1:0123456789abcdef:u:{user_id}:1-1:10"  # as a request still in flight writes
    )
    with redis.Redis(port=rec_stack.redis_port) as cache:
        cache.set(late, b'{"l": []}', ex=60)

        wait_until(lambda: not cache.exists(late), what="the late entry swept")


def test_the_readme_user_example_is_valid(rec_stack: NativeStack) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    body = json.loads(re.search(r"/v1/users -d '(.*?)'", readme, re.S).group(1))  # type: ignore[union-attr]  # no match fails the test, as it should
    body["user_id"] = f"readme-{uuid.uuid4().hex[:8]}"

    created = api(rec_stack, "POST", "/v1/users", json=body)
    answer = recommend(rec_stack, body["user_id"])

    assert created.status_code == 201, created.text
    assert answer.json()["sources"] == ["personal"]


def test_the_locust_recommend_user_reads_and_writes_without_a_failure(
    rec_stack: NativeStack, tmp_path: Path
) -> None:
    from test_loadtests import locust, stats

    users_key = f"demo-users:users:{rec_stack.key('users')}"
    run = locust(
        rec_stack,
        tmp_path,
        "--users",
        "4",
        "--spawn-rate",
        "4",
        "--run-time",
        "4s",
        "-f",
        "loadtests/recommend.py",
        LOADTEST_KEYS=users_key,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    rows = stats(tmp_path)
    assert rows["Aggregated"]["Failure Count"] == "0"
    assert int(rows["/v1/users"]["Request Count"]) == 4
    assert int(rows["/v1/models/recommend:predict"]["Request Count"]) > 10
    assert int(rows["/v1/users/{id}/events"]["Request Count"]) > 0
