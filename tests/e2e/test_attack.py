"""The attack of issue 11 (`bench/attack.py --quick`) on the test session's local stack:
0 5xx, 0 cross-org leaks, no unfinished document, every function under 512 MiB."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ragline.dev import devstack

from ..integration.helpers import make_tenant

pytestmark = pytest.mark.e2e
BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_attack() -> object:
    spec = importlib.util.spec_from_file_location("ragline_bench_attack", BENCH / "attack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_attack_finds_no_5xx_no_leak_and_no_memory_blowup(stack: devstack.Stack) -> None:
    attack = load_attack()

    def make_org(slug: str) -> object:
        tenant = make_tenant(slug)
        return attack.Org(slug, tenant.org_id, tenant.key)  # type: ignore[attr-defined]

    report = attack.attack(stack.functions, make_org, stack.pids, quick=True)  # type: ignore[attr-defined]
    print(json.dumps(report, indent=1))
    assert report["requests"] > 150  # ~170 attack requests, plus status polls
    assert report["five_xx"] == 0, report["five_xx_cases"]
    assert report["leaks"] == 0, report["leak_cases"]
    assert report["stuck_documents"] == []
    assert report["worst_memory_mib"] < report["memory_limit_mib"], report["peak_memory_mib"]
    assert {o["status"] for o in report["pathological_outcomes"]} <= {"ready", "failed"}
