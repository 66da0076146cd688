"""Properties of the simulator's PATCH merge (PRIMERO-API.md §2.4), over generated records."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from primero_progres.sim.primero_records import merge

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
row_ids = st.builds(lambda: str(uuid.uuid4()))
rows = st.lists(
    st.fixed_dictionaries({"unique_id": row_ids}, optional={"service_type": scalars, "n": scalars}),
    max_size=5,
)
records = st.fixed_dictionaries(
    {"services_section": rows, "protection_concerns": st.lists(st.text(max_size=3), max_size=3)},
    optional={"age": scalars, "name": scalars},
)


@given(records)
def test_empty_subform_array_changes_nothing(record: dict[str, Any]) -> None:
    assert merge(record, {"services_section": []}) == record


@given(records, st.data())
def test_destroy_removes_exactly_the_flagged_rows(record: dict[str, Any], data: Any) -> None:
    old = record["services_section"]
    doomed = data.draw(
        st.sets(st.sampled_from([r["unique_id"] for r in old])) if old else st.just(set())
    )
    update = [{"unique_id": row_id, "_destroy": True} for row_id in doomed]
    merged = merge(record, {"services_section": update})
    assert [r["unique_id"] for r in merged["services_section"]] == [
        r["unique_id"] for r in old if r["unique_id"] not in doomed
    ]


@given(records, rows)
def test_rows_are_matched_by_unique_id_and_new_ones_appended(
    record: dict[str, Any], new_rows: list[dict[str, Any]]
) -> None:
    old = record["services_section"]
    merged = merge(record, {"services_section": new_rows})["services_section"]
    assert [r["unique_id"] for r in merged] == [r["unique_id"] for r in old] + [
        r["unique_id"] for r in new_rows
    ]  # generated ids never collide, so every new row is appended after the old ones
    assert merged[: len(old)] == old


@given(records, st.lists(st.text(max_size=3), max_size=3), scalars)
def test_scalar_arrays_are_replaced_and_omitted_keys_kept(
    record: dict[str, Any], concerns: list[str], age: Any
) -> None:
    merged = merge(record, {"protection_concerns": concerns, "age": age})
    assert merged["protection_concerns"] == concerns
    assert merged["age"] == age
    assert merged["services_section"] == record["services_section"]
    assert merged.get("name") == record.get("name")
