"""The Ray options of proxies run as actors (cross_silo_comm.send/recv_resource_label)."""

from fed._hosts.actor import proxy_actor_options


def test_a_proxy_actor_records_no_task_events_and_holds_only_the_given_resources():
    label = {"gateway": 1.0}
    options = proxy_actor_options("silofed:job:alice:sender", label)
    # every message is a call to the proxy: Ray must not record an event per message (REP 0180)
    assert options["enable_task_events"] is False
    assert options["name"] == "silofed:job:alice:sender" and options["num_cpus"] == 0
    assert options["resources"] == label and options["resources"] is not label
    assert "resources" not in proxy_actor_options("silofed:job:alice:receiver", None)
