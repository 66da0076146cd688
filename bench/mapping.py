"""Mapping throughput on one core: flow 1 interventions/s and flow 3 services/s, DTP and PING.

Run with ``make bench`` (or ``.venv/bin/python bench/mapping.py [N]``). The
batch is generated, deterministic, and shaped like the reference samples.
The target is at least 20,000 interventions per second through DTP. Over
PING each intervention is several joined rows and three HTTP calls, so its
mapping rate is printed for comparison, not held to the target.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date

from primero_progres.mapping import ping, primero_referral, progres_referral
from primero_progres.mapping.errors import MappingError
from primero_progres.profiles import load_profile

TARGET_INTERVENTIONS_PER_SECOND = 20_000


def interventions(count: int, rng: random.Random) -> list[dict]:
    types = ["BIA", "BID", "Alternative Care", "Family Tracing and Reunification"]
    languages = ["Nuer", "Anyuak", "Dinka, South Central", "Somali", "English"]
    batch = []
    for n in range(count):
        born = f"{rng.randint(2005, 2022)}-0{rng.randint(1, 9)}-15T00:00:00Z"
        batch.append({
            "interventiontype.progres_description": rng.choice(types),
            "individuals.progres_id": f"803-{n:09d}",
            "individuals.progres_registrationgroupid": {"Id": "x", "Name": f"803-23-{n:07d}"},
            "individuals.progres_givenname": f"Given {n}",
            "individuals.progres_middlename": "Middle",
            "individuals.progres_familyname": f"Family {n}",
            "individuals.progres_commonyusedname": "Nick",
            "individuals.progres_dateofbirth": born,
            "individuals.progres_sex": rng.choice(["125080000", "125080001", "125080003"]),
            "individuals.progres_primaryphonenumber": "+251900000000",
            "individuals.progres_coalocationlevel1": {"Name": "Gambela"},
            "individuals.progres_coalocationlevel2": {"Name": "Agnuak"},
            "individuals.progres_coalocationlevel3": {"Name": "Abobo"},
            "individuals.progres_coalocationlevel6": "Block 4",
            "languages.progres_languagecodeid": {"Name": rng.choice(languages)},
            "progres_interventionnumber": f"803-23-PRTITV-{n:07d}",
            "progres_interventionstartdate": "2023-03-14T00:00:00Z",
            "progres_interventiondescription": "<p>Referral for follow-up</p>",
            "progres_reasonforreferral": '[{"CreatedBy":"A","Text":"needs care","CreatedOn":"x"}]',
            "progres_businessunit": "577ccdf6-86de-e811-80d8-001dd8b71fe3",
            "user.title": "Protection Officer",
            "user.internalemailaddress": "officer@example.org",
            "user.mobilephone": "0900000000",
        })
    return batch


def ping_rows(batch: list[dict]) -> list[tuple[ping.InterventionKeys, list[dict]]]:
    """The same interventions as PING detail rows: 2 languages x 2 specific needs = 4 rows each."""
    tables = load_profile().ping_tables().progres_referral
    out = []
    for n, intervention in enumerate(batch):
        base = {alias: intervention[field] for field, alias in tables.fields.items()
                if field in intervention}
        group = tables.fields["individuals.progres_registrationgroupid"]
        base[group] = intervention["individuals.progres_registrationgroupid"]["Name"]
        sex = tables.fields["individuals.progres_sex"]
        base[sex] = int(intervention["individuals.progres_sex"])
        rows = [
            {**base, tables.language: language, tables.specific_need_category: need}
            for language in ("Nuer", "Anyuak") for need in ("Child at risk", "Disability")
        ]
        out.append((ping.InterventionKeys(f"lp-{n}", "bu-1"), rows))
    return out


def cases(services: int, per_case: int, rng: random.Random) -> list[tuple[dict, list[dict]]]:
    types = ["food", "alternative_care", "documentation", "basic_psychosocial_support"]
    out = []
    for c in range(services // per_case):
        rows = [
            {
                "unique_id": f"00000000-0000-4000-8000-{c:06d}{s:06d}",
                "service_type": rng.choice(types),
                "service_implementing_agency": "UNHCR",
                "service_response_day_time": "2021-02-08T16:40:17.000Z",
                "service_referral_notes": "notes",
            }
            for s in range(per_case)
        ]
        case = {
            "id": f"rec-{c}", "case_id": f"case-{c}", "owned_by": "primero_cp",
            "unhcr_individual_no": f"803-{c:09d}", "unhcr_id_no": "803-23-1", "name_first": "A",
            "name_last": "B", "date_of_birth": "2010-01-01", "sex": "female",
            "language": ["language1", "_french"], "telephone_current": 251900000000,
            "address_current": "Camp", "services_section": rows,
        }
        referrals = [
            {"id": f"ref-{c}-{i}", "service_record_id": row["unique_id"],
             "created_at": "2021-02-08T16:41:00.000Z"}
            for i, row in enumerate(rows)
        ]
        out.append((case, referrals))
    return out


def main(count: int = 10_000) -> int:
    profile = load_profile()
    rng = random.Random(2026)
    today = date(2026, 11, 29)

    batch = interventions(count, rng)
    start = time.perf_counter()
    mapped = [progres_referral.map_intervention(i, profile, today) for i in batch]
    flow1_seconds = time.perf_counter() - start
    failed = sum(isinstance(m, MappingError) for m in mapped)
    flow1_rate = count / flow1_seconds

    ping_batch = ping_rows(batch)
    start = time.perf_counter()
    read = [ping.map_ping_referral(rows, keys, profile, today) for keys, rows in ping_batch]
    ping1_seconds = time.perf_counter() - start
    ping1_failed = sum(not r.ok for r in read)
    ping1_rate = count / ping1_seconds

    case_batch = cases(count, 4, rng)
    users = {"primero_cp": {"position": "Case worker", "email": "cp@example.org",
                            "phone": "0900000001", "full_name": "CP"}}
    start = time.perf_counter()
    sent = 0
    for case, referrals in case_batch:
        sent += len(primero_referral.referral_messages(case, referrals, users, profile))
    flow3_seconds = time.perf_counter() - start
    flow3_rate = sent / flow3_seconds

    start = time.perf_counter()
    created = 0
    for case, referrals in case_batch:
        created += len(ping.referral_create_items(case, referrals, users, profile))
    ping3_seconds = time.perf_counter() - start
    ping3_rate = created / ping3_seconds

    print(f"flow 1 progres-referral: {count} interventions in {flow1_seconds:.3f} s "
          f"= {flow1_rate:,.0f} interventions/s ({failed} refused)")
    print(f"flow 3 primero-referral: {sent} services in {flow3_seconds:.3f} s "
          f"= {flow3_rate:,.0f} services/s")
    print(f"PING flow 1 (4 detail rows each): {count} interventions in {ping1_seconds:.3f} s "
          f"= {ping1_rate:,.0f} interventions/s ({ping1_failed} refused)")
    print(f"PING flow 3: {created} create items in {ping3_seconds:.3f} s "
          f"= {ping3_rate:,.0f} services/s")
    verdict = "meets" if flow1_rate >= TARGET_INTERVENTIONS_PER_SECOND else "MISSES"
    print(f"target {TARGET_INTERVENTIONS_PER_SECOND:,} interventions/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
