"""Leaving the consumer group after a clean stop, as the static member the worker is.

The worker joins its group with a static instance id (`Settings.group_instance_id`), so that a
worker stopped or killed and started again gets its partitions back without a rebalance. A
static member never leaves its group by itself: the Kafka client sends no LeaveGroup for it,
and the group keeps its partitions for it, unprocessed, until its session times out. That is
what a rolling upgrade wants (Kafka Streams' convention for static members): a clean stop
keeps the membership, and the restarted worker takes its partitions back at once, with no
partition moving anywhere. For a scale-down, where the worker is not coming back,
`STREAM_APP_LEAVE_GROUP_ON_STOP=true` makes it remove itself after a clean stop (SIGTERM: last
commit done), with LeaveGroup v3 naming its instance id (KIP-345), so the other workers take
its partitions at once. aiokafka only knows LeaveGroup v0-v1, hence the request class below.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String
from faust.assignor.client_assignment import ClientMetadata
from faust.assignor.partition_assignor import PartitionAssignor

from stream_app.settings import Settings

log = logging.getLogger(__name__)

#: How long a leave may take before the stop goes on without it.
LEAVE_TIMEOUT = 10.0


class _LeaveGroupResponseV3(Response):  # type: ignore[misc]  # aiokafka is untyped here
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "members",
            Array(
                ("member_id", String("utf-8")),
                ("group_instance_id", String("utf-8")),
                ("error_code", Int16),
            ),
        ),
    )


class _LeaveGroupRequestV3(RequestStruct):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponseV3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class _StaticLeaveGroup(Request[_LeaveGroupRequestV3]):  # type: ignore[misc]
    API_KEY = 13

    def __init__(self, group_id: str, instance_id: str) -> None:
        self.group_id = group_id
        self.instance_id = instance_id

    def build(self, request_struct_class: type[_LeaveGroupRequestV3]) -> _LeaveGroupRequestV3:
        # An empty member id: the coordinator finds the member by its instance id.
        return request_struct_class(self.group_id, [("", self.instance_id)])


def log_kept_membership(settings: Settings) -> None:
    """Say that a cleanly stopped worker stays in its group, and for how long."""
    log.info(
        "stopped; still a member of group %s as %s for %g s: started again under that id "
        "within that time it takes its partitions back without a rebalance "
        "(STREAM_APP_LEAVE_GROUP_ON_STOP=true leaves the group at once instead)",
        settings.app_id,
        settings.group_instance_id,
        settings.session_timeout,
    )


async def leave_group(settings: Settings, timeout: float = LEAVE_TIMEOUT) -> bool:
    """Remove this worker's static member from its group; False (logged) when that failed."""
    group, instance = settings.app_id, settings.group_instance_id
    try:
        leave = _leave(
            settings.bootstrap_servers, group, instance, **settings.security.client_kwargs()
        )
        await asyncio.wait_for(leave, timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning(
            "could not leave group %s as %s (%r): its partitions move to the other workers "
            "once its session times out",
            group,
            instance,
            exc,
        )
        return False
    log.info("left group %s as %s", group, instance)
    return True


async def _leave(bootstrap: list[str], group: str, instance: str, **client_options: Any) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **client_options)
    await client.bootstrap()
    try:
        node = await client.coordinator_lookup(CoordinationType.GROUP, group)
        response = await client.send(
            node, _StaticLeaveGroup(group, instance), group=ConnectionGroup.COORDINATION
        )
    finally:
        await client.close()
    codes = [response.error_code, *(member[2] for member in response.members)]
    # UNKNOWN_MEMBER_ID: the group had already let it go (e.g. its session had expired).
    failed = [code for code in codes if code not in (0, 25)]
    if failed:
        raise for_code(failed[0])()


class StaticMemberAssignor(PartitionAssignor):
    """Faust's partition assignor, for a static member that comes back under another address.

    A static member that rejoins within its session timeout gets the assignment of its
    previous run back without a rebalance, and that assignment names the address (web host and
    port) the previous run advertised. Faust's `PartitionAssignor.on_assignment`
    (faust/assignor/partition_assignor.py) asserts it is the current one, and the assertion
    kills the consumer's group coordination: the worker hangs. Here a worker restarted under
    another address takes the assignment as its own, then leaves the group by its instance
    id, so the group rebalances and every worker learns the new address (one rebalance, only
    when the address changed).
    """

    #: The leave under way, kept so that it is not garbage-collected before it ends.
    _leaving: asyncio.Future[bool] | None = None

    def on_assignment(self, assignment: Any) -> None:
        """Faust's, with the previous run's address replaced by the current one."""
        metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
        url = str(self._url)
        if metadata.url != url:
            log.warning(
                "assignment made for this instance at %s, now at %s: leaving the group so "
                "that it rebalances with the new address",
                metadata.url,
                url,
            )
            previous = metadata.url
            metadata.url = url
            # Its own partitions are served here: the routing tables name it by its address.
            for distribution in (
                metadata.changelog_distribution,
                metadata.external_topic_distribution,
            ):
                if previous in distribution:
                    distribution[url] = distribution.pop(previous)
            assignment = type(assignment)(
                assignment.version, assignment.assignment, self._compress(metadata.dumps())
            )
            app: Any = self.app  # the StreamApp, which holds the settings
            settings: Settings = app.settings
            # On the consumer thread's loop, which runs the group coordination calling this.
            self._leaving = asyncio.ensure_future(leave_group(settings))
        super().on_assignment(assignment)
