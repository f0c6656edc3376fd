"""The pure parts of bench/httpd/matrix.py: reading wrk's and h2load's output, the medians and
the table. No load is generated and no rate is asserted (benchmarks print figures; tests don't)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "httpd" / "matrix.py"
_spec = importlib.util.spec_from_file_location("bench_matrix", _PATH)
matrix = importlib.util.module_from_spec(_spec)
sys.modules["bench_matrix"] = matrix  # dataclasses look the module up by name
_spec.loader.exec_module(matrix)

WRK_404 = """\
Running 1s test @ http://127.0.0.1:18901/nope
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   560.48us    1.41ms  17.11ms   91.24%
    Req/Sec    57.48k    17.45k   83.23k    60.00%
  Latency Distribution
     50%  132.00us
     75%  161.00us
     90%    1.70ms
     99%    5.36ms
  57843 requests in 1.02s, 18.87MB read
  Socket errors: connect 0, read 4, write 0, timeout 0
  Non-2xx or 3xx responses: 57843
Requests/sec:  56442.88
Transfer/sec:     18.41MB
"""

H2LOAD = """\
finished in 2.00s, 6592.50 req/s, 7.52MB/s
requests: 13185 total, 13235 started, 13185 done, 13100 succeeded, 85 failed, 0 errored, 0 timeout
status codes: 13100 2xx, 0 3xx, 85 4xx, 0 5xx
traffic: 7.52MB (7884321) total, 1.00MB (1048576) headers (space savings 30.00%), 13.0MB data
"""


def test_wrk_output() -> None:
    r = matrix.parse_wrk(WRK_404)
    assert r.rps == 56442.88
    assert r.p50_ms == pytest.approx(0.132)
    assert r.p99_ms == pytest.approx(5.36)
    assert r.requests == 57843
    assert r.errors == "connect 0, read 4, write 0, timeout 0"
    assert r.statuses == {"non-2xx/3xx": 57843}


def test_wrk_output_without_a_rate_is_an_error() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        matrix.parse_wrk("unable to connect to 127.0.0.1:18101 Connection refused\n")


@pytest.mark.parametrize(("text", "ms"), [("812.00us", 0.812), ("1.23ms", 1.23), ("2.00s", 2000.0)])
def test_wrk_durations(text: str, ms: float) -> None:
    assert matrix.duration_ms(text) == pytest.approx(ms)


def test_h2load_output_and_log() -> None:
    log = "".join(f"1700000000{i:06d}\t200\t{1000 * (i + 1)}\n" for i in range(100))
    log += "1700000000999999\t-1\t4957661930000\n"  # no response: not a latency
    r = matrix.parse_h2load(H2LOAD, log)
    assert r.rps == 6592.5
    assert r.requests == 13185
    assert (r.p50_ms, r.p99_ms) == (50.0, 99.0)  # from the per-request log, in ms
    assert r.statuses == {"2xx": 13100, "3xx": 0, "4xx": 85, "5xx": 0}
    assert r.errors == ""  # the failed ones are the 4xx, which a 404 cell expects


def test_h2load_failures_beyond_4xx_are_reported() -> None:
    out = H2LOAD.replace("0 errored, 0 timeout", "3 errored, 1 timeout")
    assert matrix.parse_h2load(out, "").errors == "failed 85, errored 3, timeout 1"
    assert math.isnan(matrix.parse_h2load(out, "").p50_ms)  # no log: no percentiles


def test_percentile_is_nearest_rank() -> None:
    assert matrix.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert matrix.percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert matrix.percentile([7.0], 99) == 7.0


def run(server: str, cell: str, rps: float, p99: float, rnd: int = 1) -> dict:
    return {"round": rnd, "cell": cell, "server": server, "rps": rps, "p50_ms": 1.0, "p99_ms": p99}


def test_table_takes_medians_and_ratios_to_nginx() -> None:
    runs = [run("nginx (Debian)", "1k/50/ka", rps, 4.0, i) for i, rps in enumerate((30000, 40000, 99999))]
    runs += [run("httpd (compiled)", "1k/50/ka", rps, 5.0, i) for i, rps in enumerate((10000, 32000, 35000))]
    runs.append(run("nginx (Debian)", "404/1/close", 1000, 2.0))  # httpd missing in this cell
    med = matrix.medians(runs)
    assert med[("1k/50/ka", "nginx (Debian)")]["rps"] == 40000
    assert med[("1k/50/ka", "httpd (compiled)")]["rounds"] == 3
    lines = matrix.table(runs, ["httpd (compiled)", "nginx (Debian)"], "nginx (Debian)").splitlines()
    assert "httpd/nginx" in lines[0]
    row = next(line for line in lines if line.startswith("1k/50/ka"))
    assert row.split()[-2:] == ["0.80x", "1.25x"]  # 32000/40000 req/s, 5.0/4.0 ms p99
    row = next(line for line in lines if line.startswith("404/1/close"))
    assert row.split()[1] == "-" and row.split()[-1] == "-"


def test_cpu_lists() -> None:
    assert matrix.cpu_list("0-2,5") == [0, 1, 2, 5]
    assert matrix.cpu_list("1") == [1]
