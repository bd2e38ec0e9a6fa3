"""Status and control over MQTT.

``MqttConfig`` is the ``mqtt:`` section of the configuration; the service
(``orchestrator.mqtt.service.MqttService``) publishes retained status, module
health, decision/order/fill streams and heartbeats under the instance's
prefix, and executes commands from ``<prefix>/cmd/<verb>`` through
``DaemonControl``. Importing this package does not import the MQTT client.
"""

from orchestrator.mqtt.config import BrokerAddress, MqttConfig, parse_broker_url

__all__ = ["BrokerAddress", "MqttConfig", "parse_broker_url"]
