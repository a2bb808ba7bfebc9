"""A fleet on loopback: portowner on an agent, collectd's own network plugin
carrying its values and notifications to a central collectd, which keeps
them (unixsock), exports them (write_prometheus) and hands the
notifications to exec. Two real daemons, real listeners, real UDP.

The network plugin does not carry notification meta data, so what reaches
the central host is the message: it must name the protocol, the port, the
block and the owner (comm and pid) by itself.
"""
import re
import time

import pytest

from lib import collectd, env, listeners, waits
from lib.collectd import block, ident, portowner_conf

from . import prom

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "exec", "network",
                                  "write_prometheus"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

AGENT = "po-agent-1"
CENTRAL = "po-central"


def agent_conf(server_port, *blocks):
    # FlushInterval in <LoadPlugin>: the network plugin buffers values until
    # a packet (MaxPacketSize, 1452 bytes) is full; a flush every interval
    # sends them at once. Notifications are sent when they happen.
    return portowner_conf(*blocks) + """
<LoadPlugin network>
  FlushInterval %s
</LoadPlugin>
<Plugin network>
  Server "127.0.0.1" "%d"
</Plugin>
""" % (collectd.INTERVAL, server_port)


def central_conf(listen_port, prom_port):
    return """
LoadPlugin network
<Plugin network>
  Listen "127.0.0.1" "%d"
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "%d"
</Plugin>
""" % (listen_port, prom_port)


@pytest.fixture
def fleet(daemons):
    """(agent factory, central daemon, prometheus port): the central daemon
    is started; the agent is made by agent(*blocks) and started."""
    net_port = listeners.free_port()
    prom_port = listeners.free_port()
    central = daemons(central_conf(net_port, prom_port), hostname=CENTRAL,
                      csv=False)
    central.expect_log(prom.MHD_LOGGER_NOISE)
    central.start()

    def agent(*blocks):
        a = daemons(agent_conf(net_port, *blocks), hostname=AGENT, csv=False,
                    exec_handler=False)
        a.work.install_plugin("network")  # <LoadPlugin network> block form
        return a.start()

    return agent, central, prom_port


def from_agent(central, **match):
    """portowner notifications the central daemon received from the agent."""
    return central.notifications(plugin="portowner", **match,
                                 pred=lambda n: n.get("host") == AGENT)


def wait_from_agent(central, timeout_s=10, **match):
    return waits.wait_for(lambda: from_agent(central, **match), timeout_s,
                          "a notification from %s matching %s at the central "
                          "daemon" % (AGENT, match),
                          lambda: [collectd.short(n) for n in central.notifications()])[0]


def wait_read(d, instance, expected):
    """The values of one read of the agent's portowner-INSTANCE in d's
    cache (the agent's own, or the central daemon's copy) once they are
    expected."""
    return waits.wait_read(d, instance, expected, host=AGENT)


def sync(agent, central, instance):
    """Every notification the agent sent so far (up to and with its read
    after the last one the test saw of portowner-INSTANCE) is recorded at
    the central daemon: a sentinel sent through the agent arrives after
    them (the network plugin sends a notification when it is dispatched,
    and receives and dispatches in order)."""
    waits.sync_notifications(central, via=agent, reads_of=ident(
        instance, "count-sockets", host=AGENT))


def owner_text(listener):
    """comm[pid] user, as an on-call person reads it in the message.

    (portowner names a process by its executable's basename, which is its
    comm unless the process renamed itself: po-listen does not here.)"""
    return "%s[%d] %s" % (listener.comm, listener.pid, listener.user)


def test_values_and_listener_notifications_reach_the_central_daemon(fleet, listen):
    agent, central, prom_port = fleet
    # A port below the ephemeral range, reserved: free again for the second
    # listener below (a client connection cannot take it meanwhile).
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    port = l.port
    a = agent(block("web", Port=port, Protocol="tcp4"))

    # The agent's values, under the agent's host name, at the central host:
    # the same five values the agent has in its own cache.
    expected = wait_read(a, "web", {"count-sockets": 1, "count-processes": 1,
                                    "count-unowned": 0,
                                    "queue_length-accept": 0}).values
    assert expected["queue_length-accept_max"] > 0, expected
    got = wait_read(central, "web", expected).values
    assert got == expected
    names = central.listval()
    assert all(ident("web", k, host=AGENT) in names
               for k in collectd.VALUE_NAMES), names
    # Only the agent runs portowner: the central host has no values of its own.
    assert not [n for n in names if n.startswith(CENTRAL + "/portowner")], names

    # ...and exported by the central write_prometheus with instance = agent.
    s = prom.wait_sample(prom_port, "collectd_portowner_count", value=1,
                         portowner="web", type="sockets", instance=AGENT)
    assert s.value == 1

    # The listener dies: FAILURE at the central host, and the message alone
    # says what, where and who held it.
    before = time.time()
    l.stop()
    # The listener requirement tcp4/PORT of the block: its own identifier.
    fail = wait_from_agent(central, severity="FAILURE", plugin_instance="web",
                           type="count", type_instance="listener-tcp4-%d" % port)
    msg = fail["message"]
    assert "tcp4/%d" % port in msg, msg
    assert "(web)" in msg, msg
    assert owner_text(l) in msg, msg
    assert "lost its listener" in msg, msg
    # Dated by the read that found the port empty, after the listener went.
    assert fail["time"] >= before, (fail, before)
    wait_read(central, "web", {"count-sockets": 0, "count-processes": 0})
    prom.wait_sample(prom_port, "collectd_portowner_count", value=0,
                     portowner="web", type="sockets", instance=AGENT)

    # A new listener on the port: OKAY, naming the new owner.
    l2 = listen("tcp4:127.0.0.1:%d" % port)
    ok = wait_from_agent(central, severity="OKAY", plugin_instance="web",
                         type="count", type_instance="listener-tcp4-%d" % port)
    msg = ok["message"]
    assert "tcp4/%d" % port in msg and "(web)" in msg, msg
    assert owner_text(l2) in msg, msg
    assert "[%d]" % l.pid not in msg, msg
    wait_read(central, "web", {"count-sockets": 1, "count-processes": 1})

    # Exactly one FAILURE and one OKAY crossed the network: the condition is
    # sent when it begins and when it ends, not every interval.
    waits.wait_reads(a, ident("web", "count-sockets", host=AGENT), 5)
    sync(a, central, "web")
    got = [(n["severity"], n["type_instance"])
           for n in from_agent(central, plugin_instance="web")]
    assert got == [("FAILURE", "listener-tcp4-%d" % port),
                   ("OKAY", "listener-tcp4-%d" % port)], got

    a.stop()
    central.stop()


def test_owner_change_and_unexpected_owner_reach_the_central_daemon(fleet, listen):
    agent, central, prom_port = fleet
    old = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    port = old.port
    # Hits 25 (5 s at Interval 0.2): the swap below is an owner change, not
    # a loss followed by a return.
    a = agent(block("api", Port=port, Protocol="tcp4", Hits=25,
                    ExpectUser="root"))
    wait_read(central, "api", {"count-sockets": 1, "count-processes": 1})

    # The service comes back under another user: a restart (every pid
    # replaced, other user) and an owner the config does not expect.
    old.stop()
    new = listen("tcp4:127.0.0.1:%d" % port, user=env.NOBODY)
    assert new.user == env.NOBODY

    warn = wait_from_agent(central, severity="WARNING", plugin_instance="api",
                           type="count", type_instance="owner_change")
    msg = warn["message"]
    assert "tcp4/%d" % port in msg and "(api)" in msg, msg
    # old -> new, each with its pid and user.
    assert re.search(re.escape(owner_text(old)) + r".*->.*" +
                     re.escape(owner_text(new)), msg), msg

    bad = wait_from_agent(central, severity="FAILURE", plugin_instance="api",
                          type="count", type_instance="unexpected_owner")
    msg = bad["message"]
    assert "tcp4/%d" % port in msg and "(api)" in msg, msg
    assert owner_text(new) in msg, msg
    assert "unexpected" in msg, msg

    # The swap was quicker than Hits: no "lost its listener" went out.
    sync(a, central, "api")
    got = [(n["severity"], n["type_instance"])
           for n in from_agent(central, plugin_instance="api")]
    assert got == [("WARNING", "owner_change"), ("FAILURE", "unexpected_owner")] or \
        got == [("FAILURE", "unexpected_owner"), ("WARNING", "owner_change")], got

    a.stop()
    central.stop()
