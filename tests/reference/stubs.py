"""What the reference drivers (transform.py, events.py) give monasca-persister
9.0.0's repositories in place of their surroundings: stand-ins for
oslo.config and oslo.log, and the Kafka message `process_message` is handed.
"""

import logging
import sys
import types


def install(section, conf, modules):
    """Installs oslo.config (`cfg.CONF.<section>` is `conf`), oslo.log (the
    standard logging) and `modules` (name -> module) in `sys.modules`."""
    cfg = types.ModuleType("oslo_config.cfg")
    cfg.CONF = types.SimpleNamespace(**{section: conf})
    oslo_config = types.ModuleType("oslo_config")
    oslo_config.cfg = cfg

    log = types.ModuleType("oslo_log.log")
    log.getLogger = logging.getLogger
    oslo_log = types.ModuleType("oslo_log")
    oslo_log.log = log

    sys.modules.update({
        "oslo_config": oslo_config,
        "oslo_config.cfg": cfg,
        "oslo_log": oslo_log,
        "oslo_log.log": log,
        **modules,
    })


class Message:
    """What the Kafka consumer hands `process_message`: `value()` is bytes."""

    def __init__(self, value):
        self._value = value

    def value(self):
        return self._value


def json_text(text):
    """Text made safe for JSON without lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
