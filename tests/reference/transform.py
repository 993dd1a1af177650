"""Runs the reference persister's own transform on messages read from stdin.

The oracle of the differential test (tests/reference_diff.rs) and of
tests/reference/regenerate-compat: monasca-persister 9.0.0's InfluxDB
metrics and alarm-state-history repositories, whose `process_message` turns
one Kafka message into one line of line protocol and a tenant id. Only
their surroundings are stubbed: the configuration (oslo.config), the logger
(oslo.log) and the InfluxDB client library, none of which the transform
uses. Run it with the Python of the private virtualenv that
tests/reference/venv creates (monasca-persister and simplejson pinned in
tests/reference/requirements.txt).

Input, one message per line: `M <base64>` (topic `metrics`) or
`A <base64>` (topic `alarm-state-transitions`), the base64 of the Kafka
message value. Output, one JSON object per input line (ASCII only):

- `{"line": B64, "tenant": B64, "hashable": BOOL}`: the line the reference
  writes and `'%s' % tenant_id`, the tenant part of the database name in
  db_per_tenant mode, each as the base64 of its UTF-8 bytes, exactly as the
  InfluxDB client sends them (`('\\n'.join(lines) + '\\n').encode('utf-8')`).
  `hashable` is false when the tenant id cannot be a dict key: in
  db_per_tenant mode the reference then drops the message (`DataPointsAsDict`
  raises TypeError inside the consumer's try block).
- `{"unencodable": TEXT}`: the line (or the database name) holds a lone
  UTF-16 surrogate, so the InfluxDB client's `encode('utf-8')` raises while
  writing the batch: the reference never stores it (its consumer exits and
  re-reads the same batch).
- `{"error": NAME, "detail": TEXT}`: `process_message` raised (the
  reference logs the exception and drops the message).

With `--lenient`, Python's limits on the digits of an integer and on
recursion are lifted and a metric's `"dimensions": null` is read as `{}`:
what the reference would write but for those (the deliberate differences
of docs/line-protocol.md where we write what the reference drops).
"""

import base64
import json
import sys
import types

import stubs


def _stub_modules():
    """Installs stand-ins for the modules the repositories import but whose
    behaviour the transform does not depend on."""
    influxdb_conf = types.SimpleNamespace(
        database_name="mon",
        db_per_tenant=False,
        ip_address="127.0.0.1",
        port=8086,
        user="mon_persister",
        password="",
        ssl=False,
        verify_ssl=False,
        batch_size=10000,
        default_retention_hours=0,
    )

    class InfluxDBClientError(Exception):
        pass

    class InfluxDBClient:
        def __init__(self, **_settings):
            pass

    exceptions = types.ModuleType("influxdb.exceptions")
    exceptions.InfluxDBClientError = InfluxDBClientError
    influxdb = types.ModuleType("influxdb")
    influxdb.InfluxDBClient = InfluxDBClient
    influxdb.exceptions = exceptions

    stubs.install("influxdb", influxdb_conf, {
        "influxdb": influxdb,
        "influxdb.exceptions": exceptions,
    })


_stub_modules()

from monasca_persister.repositories.influxdb import (  # noqa: E402
    alarm_state_history_repository,
    metrics_repository,
)

REPOSITORIES = {
    "M": metrics_repository.MetricInfluxdbRepository(),
    "A": alarm_state_history_repository.AlarmStateHistInfluxdbRepository(),
}


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def transform(kind, payload):
    repository = REPOSITORIES[kind]
    try:
        line, tenant_id = repository.process_message(stubs.Message(payload))
    except Exception as e:  # the reference's consumer catches Exception
        return {"error": type(e).__name__, "detail": stubs.json_text(str(e))}
    try:
        hash(tenant_id)
        hashable = True
    except TypeError:
        hashable = False
    tenant = "%s" % (tenant_id,)
    try:
        body = ("\n".join([line]) + "\n").encode("utf-8")
        tenant_bytes = tenant.encode("utf-8")
    except UnicodeEncodeError as e:
        return {"unencodable": stubs.json_text(str(e))}
    return {
        "line": _b64(body[:-1]),
        "tenant": _b64(tenant_bytes),
        "hashable": hashable,
    }


def main():
    if sys.version_info < (3, 11):
        sys.exit("the reference's Python must be 3.11 or later "
                 "(its int/str digit limit and Unicode 14 tables)")
    if "--lenient" in sys.argv[1:]:
        sys.set_int_max_str_digits(0)
        sys.setrecursionlimit(100000)
        parse = metrics_repository.parse_measurement_message

        def null_dimensions_as_empty(message):
            dimensions, *rest = parse(message)
            return ({} if dimensions is None else dimensions, *rest)

        metrics_repository.parse_measurement_message = null_dimensions_as_empty
    out = sys.stdout
    for request in sys.stdin.buffer:
        kind, _, data = request.strip().partition(b" ")
        kind = kind.decode("ascii")
        if kind not in REPOSITORIES:
            sys.exit("unknown message kind %r" % kind)
        result = transform(kind, base64.b64decode(data))
        out.write(json.dumps(result, ensure_ascii=True))
        out.write("\n")
    out.flush()


if __name__ == "__main__":
    main()
