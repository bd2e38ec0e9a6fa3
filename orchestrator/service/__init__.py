"""Running as a service: systemd notification, watchdog, graceful stop.

``notify`` speaks systemd's notify protocol, ``systemd`` is the daemon
service that announces readiness, status, reloads and stops and pings the
watchdog from the event loop, ``shutdown`` stops a daemon in order, and
``config`` holds the ``shutdown:`` section. Importing this package imports
nothing else, so the configuration schema can use it.
"""
