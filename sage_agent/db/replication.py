"""Streaming replication as PostgreSQL reports it: is this server a hot standby, how far behind is it,
and (on a primary) which standbys and slots there are and how much WAL each holds back."""

from __future__ import annotations

from dataclasses import dataclass, field

from sage_agent.db.env import ConfigError


class StandbyWrite(ConfigError):
    """A write was asked of a read-only hot standby."""

    def __init__(self, command: str, where: str) -> None:
        super().__init__(
            f"{command} writes, but {where} is a read-only hot standby (pg_is_in_recovery() is true). Nothing was "
            "started: no snapshot, no lock, no change. Point DB Sage at the primary (--db-url, or the environment's "
            "URL/direct URL) and run it again")


def is_standby(conn) -> bool:
    return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])


@dataclass
class StandbyStatus:
    """This server, seen from itself."""

    standby: bool
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    replay_lag_bytes: int | None = None  # received but not yet replayed
    replay_delay_s: float | None = None  # now() - last replayed commit's timestamp (grows when the primary is idle)
    upstream: str | None = None  # the WAL receiver's status and primary (host:port), password-free
    paused: bool = False


@dataclass
class StandbyLag:
    """One standby as its primary sees it (pg_stat_replication)."""

    name: str
    client: str
    state: str
    sync_state: str
    lag_bytes: int | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None


@dataclass
class Slot:
    name: str
    slot_type: str
    active: bool
    retained_bytes: int | None
    wal_status: str | None


@dataclass
class ReplicationPicture:
    status: StandbyStatus
    standbys: list[StandbyLag] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)


def _secs(value) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def standby_status(conn) -> StandbyStatus:
    row = conn.execute(
        """
        select /* db-sage */ pg_is_in_recovery(),
               case when pg_is_in_recovery() then pg_last_wal_receive_lsn()::text end,
               case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text end,
               case when pg_is_in_recovery() then pg_wal_lsn_diff(pg_last_wal_receive_lsn(),
                                                                 pg_last_wal_replay_lsn())::bigint end,
               case when pg_is_in_recovery() then now() - pg_last_xact_replay_timestamp() end,
               case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end
        """).fetchone()
    status = StandbyStatus(standby=bool(row[0]), receive_lsn=row[1], replay_lsn=row[2], replay_lag_bytes=row[3],
                           replay_delay_s=_secs(row[4]), paused=bool(row[5]))
    if status.standby:
        rec = conn.execute("select status, sender_host, sender_port from pg_stat_wal_receiver").fetchone()
        status.upstream = f"{rec[0]} from {rec[1]}:{rec[2]}" if rec else "no WAL receiver (archive recovery?)"
    return status


def replication_picture(conn) -> ReplicationPicture:
    """The standby's own status; on a primary also each standby's lag and each slot's retained WAL."""
    picture = ReplicationPicture(status=standby_status(conn))
    if picture.status.standby:
        return picture
    for r in conn.execute(
            """
            select application_name, coalesce(host(client_addr), 'local'), state, sync_state,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, write_lag, flush_lag, replay_lag
              from pg_stat_replication order by application_name, pid""").fetchall():
        picture.standbys.append(StandbyLag(name=r[0] or "(unnamed)", client=r[1], state=r[2] or "", sync_state=r[3] or "",
                                           lag_bytes=r[4], write_lag_s=_secs(r[5]), flush_lag_s=_secs(r[6]),
                                           replay_lag_s=_secs(r[7])))
    for r in conn.execute(
            """
            select slot_name, slot_type, active,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(restart_lsn, confirmed_flush_lsn))::bigint,
                   wal_status
              from pg_replication_slots order by slot_name""").fetchall():
        picture.slots.append(Slot(name=r[0], slot_type=r[1], active=bool(r[2]), retained_bytes=r[3], wal_status=r[4]))
    return picture
