"""Runs the reference persister's own events repository on messages read
from stdin: what it would create in Elasticsearch for each one.

The oracle of tests/events.rs: monasca-persister 9.0.0's
`ElasticSearchEventsRepository`, its `process_message` and `write_batch`
as they are. Only their surroundings are stubbed: the configuration
(oslo.config, `[elasticsearch] index_name` from `--index-name`), the logger
(oslo.log) and the Elasticsearch client library, whose `create()` records
the index and body the repository passes it instead of sending them. Its
`datetime.today()` is the date given with `--today`, so that the oracle and
the persister under test agree on "today". Run it with the Python of the
private virtualenv that tests/reference/venv creates.

Input, one request per line:
- `E <base64>`: a Kafka message value of the events topic. Answer
  `{"index": TEXT, "body": TEXT}` (what `es.create` gets), or
  `{"error": NAME, "detail": TEXT}` when `process_message` raises (the
  reference logs and drops the message), or `{"write_error": NAME,
  "detail": TEXT}` when `write_batch` raises (the reference exits).
- `T <base64>`: a JSON value as an event's `timestamp`. Answer
  `{"date": TEXT}`, what `_normalize_timestamp` makes of it, or
  `{"write_error": NAME, "detail": TEXT}`.
Output is one JSON object per input line, ASCII only.
"""

import argparse
import base64
import datetime as datetime_module
import json
import logging
import sys
import types

import stubs


def _stub_modules(index_name):
    elasticsearch_conf = types.SimpleNamespace(
        index_name=index_name,
        hosts=["localhost:9200"],
        sniff_on_start=False,
        sniff_on_connection_fail=False,
        sniffer_timeout=None,
        max_retries=3,
    )
    class Elasticsearch:
        """Records what the repository would send."""

        def __init__(self, **_settings):
            self.created = []

        def create(self, index, doc_type, body):
            self.created.append((index, doc_type, body))

    elasticsearch = types.ModuleType("elasticsearch")
    elasticsearch.Elasticsearch = Elasticsearch

    stubs.install("elasticsearch", elasticsearch_conf, {"elasticsearch": elasticsearch})


def main():
    if sys.version_info < (3, 11):
        sys.exit("the reference's Python must be 3.11 or later")
    parser = argparse.ArgumentParser()
    parser.add_argument("--index-name", default="events")
    parser.add_argument("--today", required=True, help="YYYY-MM-DD")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    _stub_modules(args.index_name)

    from monasca_persister.repositories.elasticsearch import events_repository

    today = datetime_module.datetime.strptime(args.today, "%Y-%m-%d")

    class FixedToday(datetime_module.datetime):
        @classmethod
        def today(cls):
            return today

    events_repository.datetime = FixedToday
    repository = events_repository.ElasticSearchEventsRepository()
    normalize = events_repository.ElasticSearchEventsRepository._normalize_timestamp

    out = sys.stdout
    for request in sys.stdin.buffer:
        kind, _, data = request.strip().partition(b" ")
        payload = base64.b64decode(data)
        if kind == b"E":
            try:
                data_point, _project = repository.process_message(stubs.Message(payload))
            except Exception as e:  # the reference's consumer catches Exception
                result = {"error": type(e).__name__, "detail": stubs.json_text(str(e))}
            else:
                repository.es.created.clear()
                try:
                    repository.write_batch([data_point])
                    index, _doc_type, body = repository.es.created[0]
                    result = {"index": stubs.json_text(index), "body": stubs.json_text(body)}
                except Exception as e:
                    result = {"write_error": type(e).__name__, "detail": stubs.json_text(str(e))}
        elif kind == b"T":
            try:
                result = {"date": normalize(json.loads(payload))}
            except Exception as e:
                result = {"write_error": type(e).__name__, "detail": stubs.json_text(str(e))}
        else:
            sys.exit("unknown request kind %r" % kind)
        out.write(json.dumps(result, ensure_ascii=True))
        out.write("\n")
    out.flush()


if __name__ == "__main__":
    main()
