"""What every pytest suite of portowner shares, imported the same way
everywhere (tests/ is on sys.path: pytest puts the root conftest's directory
there):

    from lib import collectd, dump, env, listeners, waits

  env        where the sources, the build and collectd are; what this
             machine has (processes whose fds root cannot read)
  waits      deadlines and polling (wait_for), and every synchronisation
             with a running daemon: the values of one read (read,
             wait_read), reads counted (wait_reads), notifications
             (wait_notification, sync_notifications)
  listeners  free ports, real listeners in real processes (po-listen, a
             python3 one), what /proc/net shows listening
  collectd   the real collectd daemon: Workdir, Collectd, the config
             builders, the log check, collectd -T, fixtures' teardown
  dump       portowner-dump: run it, its JSON, the values it implies

The root conftest (tests/conftest.py) holds the pytest hooks and the
environment checks (markers requires_root, requires_collectd,
requires_build) and the fixtures every suite uses (listen).
"""
