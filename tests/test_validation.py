from __future__ import annotations

import unicodedata

import pytest
from sqlalchemy import func, select

from core.models import comment_table, event_table, like_table, outbox_table, photo_table
from core.realtime.memory import MemoryProvider
from tests.support.api import Api, bearer


async def _nothing_written(api: Api, provider: MemoryProvider, *, events: int = 1, photos: int = 2) -> None:
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(like_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(comment_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(event_table)) == events
        assert await conn.scalar(select(func.count()).select_from(photo_table)) == photos
    assert provider.published == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/api/photos/abc/like", {}, 422, "invalid_input"),
        ("POST", "/api/photos/0/like", {}, 422, "invalid_input"),
        ("POST", "/api/photos/99999999999999999999999/like", {}, 422, "invalid_input"),
        ("POST", "/api/photos/424242/like", {}, 404, "photo_not_found"),
        ("DELETE", "/api/photos/424242/like", {}, 404, "photo_not_found"),
        ("GET", "/api/photos/424242/comments", {}, 404, "photo_not_found"),
        ("POST", "/api/photos/PHOTO/like", {"headers": {"X-Mutation-Id": "has spaces"}}, 422, "invalid_mutation_id"),
        ("POST", "/api/photos/PHOTO/like", {"headers": {"X-Mutation-Id": "x" * 65}}, 422, "invalid_mutation_id"),
        ("POST", "/api/photos/PHOTO/comments", {"content": b"{not json"}, 422, "invalid_input"),
        ("POST", "/api/photos/PHOTO/comments", {"json": ["a", "list"]}, 422, "invalid_input"),
        ("POST", "/api/photos/PHOTO/comments", {"json": None}, 422, "invalid_input"),
        ("GET", "/api/events/Not_A_Slug", {}, 422, "invalid_input"),
        ("GET", "/api/events/unknown-event", {}, 404, "event_not_found"),
        ("GET", "/api/events/wedding/updates?after=-1", {}, 422, "invalid_input"),
        ("GET", "/api/events/wedding/updates?after=abc", {}, 422, "invalid_input"),
        ("GET", "/api/events/wedding/updates?limit=100000", {}, 422, "invalid_input"),
        ("GET", "/api/no/such/route", {}, 404, "not_found"),
        ("PUT", "/api/photos/PHOTO/like", {}, 405, "method_not_allowed"),
    ],
)
async def test_bad_input_gets_its_documented_error_and_writes_nothing(
    api: Api, provider: MemoryProvider, method: str, path: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    headers = {**bearer(guest), **kwargs.pop("headers", {})}  # type: ignore[dict-item]

    response = await api.client.request(method, path.replace("PHOTO", photo_id), headers=headers, **kwargs)  # type: ignore[arg-type]

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    await _nothing_written(api, provider)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"slug": "wedding", "title": "Again"}, 409),
        ({"slug": "-bad", "title": "x"}, 422),
        ({"slug": "bad-", "title": "x"}, 422),
        ({"slug": "Upper", "title": "x"}, 422),
        ({"slug": "has:colon", "title": "x"}, 422),
        ({"slug": "a" * 65, "title": "x"}, 422),
        ({"slug": "ok", "title": ""}, 422),
        ({"slug": "ok", "title": "x", "accessCode": "abc"}, 422),
        ({"slug": "ok"}, 422),
    ],
)
async def test_bad_events_are_refused(api: Api, provider: MemoryProvider, body: dict[str, str], status: int) -> None:
    await api.event("wedding")
    admin = await api.admin()

    response = await api.client.post("/api/admin/events", json=body, headers=bearer(admin))

    assert response.status_code == status, response.text
    await _nothing_written(api, provider)


@pytest.mark.parametrize(
    "body",
    [
        {"photos": []},
        {"photos": [{"url": "javascript:alert(1)"}]},
        {"photos": [{"url": "https://ok.example/a.jpg"}, {"url": ""}]},
        {"photos": [{"url": "https://ok.example/a.jpg", "caption": "x" * 501}]},
    ],
)
async def test_bad_photos_are_refused_whole(api: Api, provider: MemoryProvider, body: dict[str, object]) -> None:
    await api.event("wedding")
    admin = await api.admin()

    response = await api.client.post("/api/admin/events/wedding/photos", json=body, headers=bearer(admin))
    unknown = await api.client.post(
        "/api/admin/events/nope/photos", json={"photos": [{"url": "https://ok.example/a.jpg"}]}, headers=bearer(admin)
    )

    assert response.status_code == 422, response.text
    assert unknown.status_code == 404
    await _nothing_written(api, provider)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/admin/login", {"email": "admin\x00@example.com", "password": "correct horse battery"}),
        ("/api/auth/guest", {"eventSlug": "wedding\x00", "accessCode": "x"}),
        ("/api/realtime/auth", {"eventSlug": "wed\x00ding"}),
        ("/api/photos/PHOTO/comments", {"authorName": "Al\x00", "content": "hi"}),
    ],
)
async def test_nul_characters_are_refused_as_input_not_left_to_fail_in_the_database(
    api: Api, provider: MemoryProvider, path: str, body: dict[str, str]
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(path.replace("PHOTO", photo_id), json=body, headers=bearer(guest))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    await _nothing_written(api, provider)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content", "nice \u202epic\u202c"),  # right-to-left override: shows text in another order than stored
        ("content", "\u2067evil\u2069 ok"),  # a right-to-left isolate does the same
        ("content", "free\u200bmoney"),  # zero-width space: hides words from readers and filters
        ("content", "\ufeffhi"),  # a byte-order mark inside text
        ("content", "\u200b\u200c\u2060"),  # nothing visible at all
        ("content", "\u3164\u3164"),  # Hangul fillers: letters that draw nothing
        ("authorName", "\u2800"),  # a blank braille pattern as a name
        ("content", "a" + "\u0301" * 999),  # 999 combining marks stacked on one letter
        ("authorName", "Al\u202eice"),
    ],
)
async def test_text_that_would_mislead_a_reader_is_refused_and_nothing_is_written(
    api: Api, provider: MemoryProvider, field: str, value: str
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    body = {"authorName": "Ana", "content": "hi"} | {field: value}

    response = await api.client.post(f"/api/photos/{photo_id}/comments", json=body, headers=bearer(guest))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input" and field in response.json()["error"]["message"]
    listed = await api.client.get(f"/api/photos/{photo_id}/comments", headers=bearer(guest))
    assert listed.json()["comments"] == [] and provider.published == []


@pytest.mark.parametrize(
    "value",
    [
        "👨\u200d👩\u200d👧 family photo!",  # zero-width joiners inside an emoji sequence
        "مبروك \u200fللعروسين",  # Arabic with a right-to-left mark
        "Cafe\u0301 Vie\u0302\u0323t",  # combining accents, stored composed
        "नमस्ते",  # Devanagari vowel signs and virama
        "می\u200cخواهم",  # noqa: RUF001 - Persian zero-width non-joiner
    ],
)
async def test_text_of_every_script_and_emoji_sequences_are_accepted_and_stored_composed(api: Api, value: str) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Ana", "content": value}, headers=bearer(guest)
    )

    assert response.status_code == 201, response.text
    assert response.json()["content"] == unicodedata.normalize("NFC", value)
