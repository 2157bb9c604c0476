#!/usr/bin/env python3
"""moto (5.2.5) with the behaviour godwit's aws world needs and moto lacks, for tests only.

Usage: moto_launcher.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin] [--hooks URL [--hooks-sync]]
Binds (port 0 = a free port), prints `ready http://HOST:PORT` on stdout, serves until killed.

Every addition below is documented in docs/moto.md with what real AWS does:

1. CloudWatch over Smithy RPC v2 CBOR. aws-sdk-cloudwatch >= 1.100 posts CBOR to
   /service/GraniteServiceVersion20100801/operation/<Op>; moto only speaks the query protocol
   (every such call 404s). PutMetricData and GetMetricData are translated onto moto's own
   CloudWatch backend, so data put through one protocol is read through the other.
2. Aurora replica of an RDS *instance*: CreateDBCluster with an instance ARN as
   ReplicationSourceIdentifier (moto resolves it as a cluster and fails), the source's
   ReadReplicaDBClusterIdentifiers, and PromoteReadReplicaDBCluster of such a cluster, which
   like real AWS reads `available` (still a replica), then `promoting`, then `available`
   without ReplicationSourceIdentifier.
3. Parameter listings: DescribeEngineDefaultParameters, DescribeEngineDefaultClusterParameters,
   DescribeDBEngineVersions (not implemented), and the parameters of the `default.*` groups
   (moto lists none, and 404s the default cluster group), from a small table of realistic
   parameters per family; DescribeOrderableDBInstanceOptions for the listed Aurora versions
   newer than moto's data (the classes of moto's newest version).
4. RDS events godwit reads as evidence (DescribeEvents): a reboot records `DB instance shutdown`
   and `DB instance restarted` (moto records none), a completed promotion `Promoted read
   replica cluster to a stand-alone database cluster`, worded as RDS words them.
5. Answers moto gets wrong: CreateSecurityGroup in a VPC that does not exist creates the
   group (AWS: InvalidVpcID.NotFound); GetMetricData with dimensions ignores the namespace
   (AWS: another namespace is another metric, no data); GetMetricData starts its periods at
   StartTime as given (AWS rounds StartTime down, to the whole minute for recent data, so
   periods start on the minute and may start before StartTime).
6. Fault injection for retry tests: POST /godwit/faults {"action", "status", "code",
   "message", "times"} answers the next `times` calls of that API action with that error, in
   the protocol of the service; GET /godwit/faults says how many were injected per action.
   POST /moto-api/reset also clears the faults.
7. With --hooks URL: real servers behind moto's endpoints. The RDS and EC2 mutations that
   change a database (create, modify security groups or IAM auth, reboot, promote, delete;
   ingress rules of security groups) are forwarded, in call order, to a hook service
   (`POST URL/op {"op", ...}`, the test harness `tests/src/motopg/`), which applies them to real
   PostgreSQL servers and answers the endpoint addresses. moto keeps the metadata the SDK reads;
   an object reads `creating` / `modifying` / `rebooting` / `promoting` until its hook is done,
   as on RDS the status follows the work (--hooks-sync: the call answers once the work is
   done). A moto reset resets the hook service too.
"""

import argparse
import io
import json
import os
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs

import cbor2
import gzip
from werkzeug.serving import make_server

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.cloudwatch.models import cloudwatch_backends
from moto.ec2.exceptions import InvalidVPCIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.rds import models as rds_models
from moto.rds.exceptions import DBInstanceNotFoundError, InvalidDBClusterStateFault, RDSClientError

# Wall-clock length of each simulated phase (creating; promotion: available, promoting).
PHASE = 0.4

RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"

# --- 3. parameter tables --------------------------------------------------------------------

EXTENSIONS = "hstore,pg_stat_statements,pg_trgm,pgcrypto,plpgsql,postgis,postgres_fdw,uuid-ossp"


def _p(name, value, apply_type="dynamic", modifiable=True, data_type="string", allowed=None):
    return {
        "ParameterName": name,
        "ParameterValue": value,
        "Source": "engine-default",
        "ApplyType": apply_type,
        "IsModifiable": modifiable,
        "DataType": data_type,
        "AllowedValues": allowed,
    }


def instance_defaults(family):
    params = [
        _p("log_min_duration_statement", "-1", data_type="integer"),
        _p("max_connections", "LEAST({DBInstanceClassMemory/9531392},5000)", "static", data_type="integer"),
        _p("random_page_cost", "4", data_type="float"),
        _p("rds.extensions", EXTENSIONS, "static", modifiable=False, allowed=EXTENSIONS),
        _p("shared_preload_libraries", "pg_stat_statements", "static", data_type="list"),
        _p("work_mem", "4096", data_type="integer"),
    ]
    if family.startswith("postgres"):
        # Stock PostgreSQL WAL sizing exists on RDS for PostgreSQL only; Aurora's storage
        # has no such parameter (so godwit reports it as not carried over).
        params.append(_p("max_wal_size", "2048", data_type="integer"))
        params.append(_p("rds.logical_replication", "0", "static", data_type="boolean"))
    return sorted(params, key=lambda p: p["ParameterName"])


def cluster_defaults(family):
    if not family.startswith("aurora-postgresql"):
        return []
    return [
        _p("password_encryption", "scram-sha-256"),
        _p("rds.force_ssl", "1", data_type="boolean"),
        _p("rds.logical_replication", "0", "static", data_type="boolean"),
        _p("timezone", "UTC"),
    ]


ENGINE_VERSIONS = {
    "aurora-postgresql": ["15.4", "15.5", "16.1"],
    "postgres": ["15.4", "15.5", "16.1"],
}


_orig_orderable = rds_models.RDSBackend.describe_orderable_db_instance_options


def describe_orderable_db_instance_options(self, engine, engine_version):
    """moto's orderable options for Aurora PostgreSQL stop at 15.2: a version this launcher
    lists (ENGINE_VERSIONS) answers with the classes of the newest version moto has data for
    (the classes Aurora orders do not change within these versions; no db.m* among them)."""
    options = _orig_orderable(self, engine, engine_version)
    if options or engine != "aurora-postgresql" or engine_version not in ENGINE_VERSIONS[engine]:
        return options
    known = self.db_cluster_options(engine)
    newest = max((o["EngineVersion"] for o in known), key=lambda v: tuple(int(x) for x in v.split(".")))
    return [dict(o, EngineVersion=engine_version) for o in known if o["EngineVersion"] == newest]


rds_models.RDSBackend.describe_orderable_db_instance_options = describe_orderable_db_instance_options


def family_of(engine, version):
    major = version.split(".")[0]
    return f"aurora-postgresql{major}" if engine == "aurora-postgresql" else f"postgres{major}"


# --- XML (RDS query protocol) ---------------------------------------------------------------


def _x(tag, value):
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{tag}>{text}</{tag}>"


def _params_xml(params):
    out = []
    for p in params:
        out.append("<Parameter>" + "".join(_x(k, v) for k, v in p.items()) + "</Parameter>")
    return "<Parameters>" + "".join(out) + "</Parameters>"


def rds_response(action, inner):
    return (
        f'<{action}Response xmlns="{RDS_NS}"><{action}Result>{inner}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )


def rds_error(code, message):
    return (
        f'<ErrorResponse xmlns="{RDS_NS}"><Error><Type>Sender</Type>{_x("Code", code)}'
        f'{_x("Message", message)}</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>'
    )


def ec2_error(code, message):
    return (
        f"<Response><Errors><Error>{_x('Code', code)}{_x('Message', message)}</Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )


# --- 4. RDS events ---------------------------------------------------------------------------

rds_models.Event.EVENT_MAP.update(
    {
        "GODWIT_DB_INSTANCE_SHUTDOWN": {"Categories": ["availability"], "Message": "DB instance shutdown"},
        "GODWIT_DB_INSTANCE_RESTARTED": {"Categories": ["availability"], "Message": "DB instance restarted"},
        "GODWIT_DB_CLUSTER_PROMOTED": {
            "Categories": ["notification"],
            "Message": "Promoted read replica cluster to a stand-alone database cluster",
        },
    }
)

_orig_reboot = rds_models.RDSBackend.reboot_db_instance


def reboot_db_instance(self, db_instance_identifier):
    db = _orig_reboot(self, db_instance_identifier)
    if HOOKS is None:
        # moto reboots at once: both events now, in RDS's order.
        db.add_event("GODWIT_DB_INSTANCE_SHUTDOWN")
        db.add_event("GODWIT_DB_INSTANCE_RESTARTED")
        return db
    # 7. The real server restarts: `rebooting` until it is back, as RDS reports it.
    if db.status != "available":
        raise RDSClientError(
            "InvalidDBInstanceState", f"DB instance {db_instance_identifier} is not in available state ({db.status})."
        )
    db.status = "rebooting"
    db.add_event("GODWIT_DB_INSTANCE_SHUTDOWN")

    def done(_reply):
        db.status = "available"
        db.add_event("GODWIT_DB_INSTANCE_RESTARTED")

    HOOKS.submit({"op": "reboot_instance", "id": db_instance_identifier}, done, _failed(db))
    return db


rds_models.RDSBackend.reboot_db_instance = reboot_db_instance
# moto's clusters record no events; they are `db-cluster` sources on AWS.
rds_models.DBCluster.event_source_type = "db-cluster"


# --- 5. answers moto gets wrong --------------------------------------------------------------

_orig_create_sg = SecurityGroupBackend.create_security_group


def create_security_group(self, name, description, vpc_id=None, *args, **kwargs):
    if vpc_id and vpc_id not in self.vpcs:
        raise InvalidVPCIdError(vpc_id)
    return _orig_create_sg(self, name, description, vpc_id, *args, **kwargs)


SecurityGroupBackend.create_security_group = create_security_group


# --- 2. Aurora replica of an RDS instance ---------------------------------------------------

_orig_create_db_cluster = rds_models.RDSBackend.create_db_cluster
_orig_promote = rds_models.RDSBackend.promote_read_replica_db_cluster
_orig_delete_db_cluster = rds_models.RDSBackend.delete_db_cluster
_orig_status = rds_models.DBCluster.status


def _source_instance(backend, arn):
    src_id = arn.split(":")[-1]
    src = backend.databases.get(src_id)
    if src is None:
        raise DBInstanceNotFoundError(src_id)
    return src


def create_db_cluster(self, kwargs):
    rsi = kwargs.get("replication_source_identifier")
    if not rsi or ":db:" not in rsi:
        return _orig_create_db_cluster(self, kwargs)
    src = _source_instance(self, rsi)
    kwargs = dict(kwargs)
    kwargs.pop("replication_source_identifier")
    # A replica takes its master user from the source; moto insists on one being passed.
    kwargs.setdefault("master_username", src.master_username)
    if not kwargs.get("master_username"):
        kwargs["master_username"] = src.master_username
    if not kwargs.get("master_user_password"):
        kwargs["master_user_password"] = "replica-of-" + src.db_instance_identifier
    cluster = _orig_create_db_cluster(self, kwargs)
    cluster.replication_source_identifier = src.db_instance_arn
    replicas = getattr(src, "read_replica_db_cluster_identifiers", [])
    src.read_replica_db_cluster_identifiers = replicas + [cluster.db_cluster_identifier]
    if HOOKS is None:
        # Real AWS takes minutes to hours; a moment of `creating` makes the waits poll.
        cluster._godwit_timeline = [(time.monotonic() + PHASE, "creating")]
        return cluster
    # 7. `creating` until the real replica's data is copied (pg_basebackup of the source).
    cluster._godwit_busy = "creating"

    def done(reply):
        cluster._godwit_endpoint = reply["endpoint"]
        cluster._godwit_reader_endpoint = reply["reader_endpoint"]
        cluster._status = "available"
        cluster._godwit_busy = None

    HOOKS.submit(
        {
            "op": "create_cluster",
            "id": cluster.db_cluster_identifier,
            "source_id": src.db_instance_identifier,
            "engine_version": cluster.engine_version,
            "port": cluster.port,
            "iam": bool(cluster.iam_auth),
            "groups": _groups(cluster.vpc_security_group_ids, cluster.region),
        },
        done,
        _failed(cluster),
    )
    return cluster


def promote_read_replica_db_cluster(self, db_cluster_identifier):
    cluster = self.clusters.get(db_cluster_identifier)
    rsi = getattr(cluster, "replication_source_identifier", None) if cluster else None
    if not rsi or ":db:" not in rsi:
        return _orig_promote(self, db_cluster_identifier)
    if getattr(cluster, "_godwit_timeline", None):
        raise InvalidDBClusterStateFault(
            f"DB cluster {db_cluster_identifier} is already being promoted"
        )
    # As on AWS: the status reads `available` (still replicating) before `promoting`, and
    # only then `available` without ReplicationSourceIdentifier.
    now = time.monotonic()
    cluster._godwit_timeline = [(now + PHASE, "available"), (now + 2 * PHASE, "promoting")]
    cluster._godwit_promoting = True
    if HOOKS is not None:
        # 7. `promoting` lasts until the real replica left recovery.
        job = threading.Event()
        cluster._godwit_job = job
        HOOKS.submit({"op": "promote_cluster", "id": db_cluster_identifier}, lambda _r: job.set(), lambda _m: job.set())
    return cluster


def delete_db_cluster(self, *args, **kwargs):
    cluster_id = kwargs.get("cluster_identifier") or (args[0] if args else None)
    cluster = self.clusters.get(cluster_id)
    rsi = getattr(cluster, "replication_source_identifier", None) if cluster else None
    if rsi and ":db:" in rsi:
        src = self.databases.get(rsi.split(":")[-1])
        if src is not None:
            src.read_replica_db_cluster_identifiers = [
                c for c in getattr(src, "read_replica_db_cluster_identifiers", []) if c != cluster_id
            ]
        cluster.replication_source_identifier = None
    deleted = _orig_delete_db_cluster(self, *args, **kwargs)
    if HOOKS is not None:
        HOOKS.submit({"op": "delete_cluster", "id": cluster_id})
    return deleted


def _status(self):
    """Statuses on a wall-clock timeline (not per read: one describe may read it twice)."""
    busy = getattr(self, "_godwit_busy", None)
    if busy:
        return busy  # 7. a hook at work
    timeline = getattr(self, "_godwit_timeline", None)
    if timeline:
        now = time.monotonic()
        for until, status in timeline:
            if now < until:
                return status
        job = getattr(self, "_godwit_job", None)
        if job is not None and not job.is_set():
            return timeline[-1][1]  # 7. the last phase lasts until the real work is done
        self._godwit_timeline = None
        self._godwit_job = None
        if getattr(self, "_godwit_promoting", False):
            self._godwit_promoting = False
            rsi = self.replication_source_identifier
            src = self.backend.databases.get(rsi.split(":")[-1]) if rsi else None
            if src is not None:
                src.read_replica_db_cluster_identifiers = [
                    c
                    for c in getattr(src, "read_replica_db_cluster_identifiers", [])
                    if c != self.db_cluster_identifier
                ]
            self.replication_source_identifier = None
            self.backend.add_event("GODWIT_DB_CLUSTER_PROMOTED", self)
        self._status = "available"
    return _orig_status.fget(self)


# Parameters set by ModifyDB(Cluster)ParameterGroup are `Source: user` on AWS; moto records
# no source, so a listing cannot tell them from the engine defaults.
_orig_modify_pg = rds_models.RDSBackend.modify_db_parameter_group
_orig_modify_cpg = rds_models.RDSBackend.modify_db_cluster_parameter_group


def _as_user(params):
    return [dict(p, Source="user") for p in params]


def modify_db_parameter_group(self, db_parameter_group_name, db_parameter_group_parameters):
    return _orig_modify_pg(self, db_parameter_group_name, _as_user(db_parameter_group_parameters))


def modify_db_cluster_parameter_group(self, db_cluster_parameter_group_name, db_cluster_parameter_group_parameters):
    return _orig_modify_cpg(self, db_cluster_parameter_group_name, _as_user(db_cluster_parameter_group_parameters))


# ModifyDBCluster with EnableIAMDatabaseAuthentication sets an attribute moto never reads back
# (the cluster reports `iam_auth`): the cluster keeps reporting the flag it was created with.
_orig_modify_db_cluster_iam = rds_models.RDSBackend.modify_db_cluster


def modify_db_cluster(self, kwargs):
    # moto's modify overwrites kwargs["db_cluster_identifier"]: read the ids first.
    cluster_id = kwargs.get("new_db_cluster_identifier") or kwargs["db_cluster_identifier"]
    iam = kwargs.get("enable_iam_database_authentication")
    answer = _orig_modify_db_cluster_iam(self, kwargs)
    if iam is not None:
        iam = iam is True or str(iam).lower() == "true"
        self.clusters[cluster_id].iam_auth = answer.iam_auth = iam
    return answer


rds_models.RDSBackend.modify_db_cluster = modify_db_cluster
rds_models.RDSBackend.modify_db_parameter_group = modify_db_parameter_group
rds_models.RDSBackend.modify_db_cluster_parameter_group = modify_db_cluster_parameter_group
rds_models.RDSBackend.create_db_cluster = create_db_cluster
rds_models.RDSBackend.promote_read_replica_db_cluster = promote_read_replica_db_cluster
rds_models.RDSBackend.delete_db_cluster = delete_db_cluster
rds_models.DBCluster.status = property(_status, _orig_status.fset)



# --- 7. real servers behind moto's endpoints (--hooks URL) ------------------------------------

HOOKS = None  # the HookQueue when --hooks is given


class HookQueue:
    """Forwards mutations to the hook service one at a time, in call order, off the request
    thread (moto answers at once, as RDS does; the status follows the work)."""

    def __init__(self, url, sync=False):
        self.url = url.rstrip("/")
        # --hooks-sync: a mutation answers once its work is done (the lab's timing), for tests
        # whose runbook polls once a minute; RDS answers at once and the status follows.
        self.sync = sync
        self.jobs = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def submit(self, op, done=None, failed=None):
        finished = threading.Event()
        self.jobs.put((op, done, failed, finished))
        if self.sync:
            finished.wait(600)

    def drain(self):
        self.jobs.join()

    def call(self, op, timeout=600):
        req = urllib.request.Request(
            self.url + "/op", data=json.dumps(op).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError(e.read().decode("utf-8", "replace")) from None

    def _work(self):
        while True:
            op, done, failed, finished = self.jobs.get()
            try:
                reply = self.call(op)
                if done:
                    done(reply)
            except Exception as e:  # the hook service said why; the object reads `failed`
                print(f"hook {op.get('op')} {op.get('id')} failed: {e}", file=sys.stderr, flush=True)
                if failed:
                    failed(str(e))
            finally:
                finished.set()
                self.jobs.task_done()


def _failed(obj):
    def mark(_message):
        obj._godwit_busy = None
        if isinstance(obj, rds_models.DBCluster):
            obj._status = "failed"
        else:
            obj.status = "failed"

    return mark


def _rule(r):
    cidr = r.ip_range.get("CidrIp") if r.ip_range else None
    group = r.source_group.get("GroupId") if r.source_group else None
    return {"protocol": r.ip_protocol, "from": r.from_port, "to": r.to_port, "cidr": cidr, "group": group}


def _group(g):
    return {"id": g.id, "ingress": [_rule(r) for r in g.ingress_rules]}


def _groups(ids, region):
    """The security groups `ids` with their ingress rules, as the hook service enforces them."""
    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    out = []
    for gid in ids or []:
        g = ec2.get_security_group_from_id(gid)
        out.append(_group(g) if g is not None else {"id": gid, "ingress": []})
    return out


_orig_create_db_instance = rds_models.RDSBackend.create_db_instance
_orig_modify_db_instance = rds_models.RDSBackend.modify_db_instance
_orig_delete_db_instance = rds_models.RDSBackend.delete_db_instance
_orig_modify_db_cluster = rds_models.RDSBackend.modify_db_cluster
_orig_instance_endpoint = rds_models.DBInstance.endpoint
_orig_cluster_endpoint = rds_models.DBCluster.endpoint
_orig_cluster_reader_endpoint = rds_models.DBCluster.reader_endpoint
_orig_authorize_ingress = SecurityGroupBackend.authorize_security_group_ingress
_orig_revoke_ingress = SecurityGroupBackend.revoke_security_group_ingress


def hooked_create_db_instance(self, db_kwargs):
    db = _orig_create_db_instance(self, db_kwargs)
    db.status = "creating"
    db._godwit_address = None

    def done(reply):
        db._godwit_address = reply["address"]
        db.status = "available"

    if isinstance(db, rds_models.DBInstanceClustered):
        op = {
            "op": "create_cluster_instance",
            "id": db.db_instance_identifier,
            "cluster_id": db.db_cluster_identifier,
            "instance_class": db.db_instance_class,
            "port": db.cluster.port,
        }
    else:
        op = {
            "op": "create_instance",
            "id": db.db_instance_identifier,
            "engine": db.engine,
            "port": db.port,
            "iam": bool(db.enable_iam_database_authentication),
            "groups": _groups(db.vpc_security_group_ids, db.region),
        }
    HOOKS.submit(op, done, _failed(db))
    return db


def _instance_access(db):
    return (list(db.vpc_security_group_ids or []), bool(db.enable_iam_database_authentication))


def hooked_modify_db_instance(self, db_instance_identifier, db_kwargs):
    before = self.databases.get(db_instance_identifier)
    before = _instance_access(before) if before is not None else None
    db = _orig_modify_db_instance(self, db_instance_identifier, db_kwargs)
    groups, iam = _instance_access(db)
    if (groups, iam) != before and not isinstance(db, rds_models.DBInstanceClustered):
        # A security-group change applies "as soon as possible" (API_ModifyDBInstance):
        # `modifying` until the endpoint enforces the new groups.
        db.status = "modifying"

        def done(_reply):
            db.status = "available"

        HOOKS.submit(
            {"op": "modify", "id": db.db_instance_identifier, "groups": _groups(groups, db.region), "iam": iam},
            done,
            _failed(db),
        )
    return db


def hooked_delete_db_instance(self, db_instance_identifier, *args, **kwargs):
    db = _orig_delete_db_instance(self, db_instance_identifier, *args, **kwargs)
    HOOKS.submit({"op": "delete_instance", "id": db_instance_identifier})
    return db


def hooked_modify_db_cluster(self, kwargs):
    old = self.clusters.get(kwargs["db_cluster_identifier"])
    new_id = kwargs.get("new_db_cluster_identifier") or kwargs["db_cluster_identifier"]
    before = (list(old.vpc_security_group_ids or []), bool(old.iam_auth)) if old is not None else None
    answer = _orig_modify_db_cluster(self, kwargs)
    cluster = self.clusters[new_id]
    after = (list(cluster.vpc_security_group_ids or []), bool(cluster.iam_auth))
    if after != before:
        cluster._godwit_busy = answer._godwit_busy = "modifying"

        def done(_reply):
            cluster._godwit_busy = None

        HOOKS.submit(
            {"op": "modify", "id": cluster.db_cluster_identifier, "groups": _groups(after[0], cluster.region), "iam": after[1]},
            done,
            _failed(cluster),
        )
    return answer


def hooked_instance_endpoint(self):
    # No endpoint while the server is being created, as RDS omits it.
    address = getattr(self, "_godwit_address", None)
    if address is None:
        return None
    return {"Address": address, "Port": self.port}


def hooked_authorize_ingress(self, *args, **kwargs):
    added, group = _orig_authorize_ingress(self, *args, **kwargs)
    HOOKS.submit(dict(_group(group), op="security_group"))
    return added, group


def hooked_revoke_ingress(self, group_name_or_id, *args, **kwargs):
    out = _orig_revoke_ingress(self, group_name_or_id, *args, **kwargs)
    group = self.get_security_group_by_name_or_id(group_name_or_id, kwargs.get("vpc_id"))
    if group is not None:
        HOOKS.submit(dict(_group(group), op="security_group"))
    return out


def enable_hooks(url, sync=False):
    global HOOKS
    HOOKS = HookQueue(url, sync)
    rds_models.RDSBackend.create_db_instance = hooked_create_db_instance
    rds_models.RDSBackend.modify_db_instance = hooked_modify_db_instance
    rds_models.RDSBackend.delete_db_instance = hooked_delete_db_instance
    rds_models.RDSBackend.modify_db_cluster = hooked_modify_db_cluster
    rds_models.DBInstance.endpoint = property(hooked_instance_endpoint)
    rds_models.DBCluster.endpoint = property(lambda c: getattr(c, "_godwit_endpoint", None))
    rds_models.DBCluster.reader_endpoint = property(lambda c: getattr(c, "_godwit_reader_endpoint", None))
    SecurityGroupBackend.authorize_security_group_ingress = hooked_authorize_ingress
    SecurityGroupBackend.revoke_security_group_ingress = hooked_revoke_ingress


# --- the WSGI layer -------------------------------------------------------------------------

FAULTS = {}  # action -> [ {status, code, message}, ... ]
INJECTED = {}  # action -> count
LOCK = threading.Lock()


def credential_scope(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/", auth)
    return (m.group(1), m.group(2)) if m else ("us-east-1", "")


def respond(start_response, status, body, content_type, extra=()):
    data = body if isinstance(body, bytes) else body.encode()
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
    headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    headers.extend(extra)
    start_response(f"{status} {reasons.get(status, 'Error')}", headers)
    return [data]


def cbor_ts(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return cbor2.CBORTag(1, value.timestamp())
    return value


CBOR_HEADERS = [("smithy-protocol", "rpc-v2-cbor")]

DAY = 86400


def rounded_start(start, queries):
    """StartTime as CloudWatch rounds it (GetMetricData API reference, StartTime): down to the
    whole minute when less than 15 days ago, to 5 minutes up to 63 days, to the hour beyond; with
    a period of 5, 10, 20 or 30 seconds, down to a multiple of it. moto starts its periods at
    StartTime as given: an unaligned StartTime would give unaligned periods and never a period
    that starts before it, as CloudWatch does."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    t = int(start.timestamp())
    age = time.time() - t
    periods = {int(q["MetricStat"]["Period"]) for q in queries if "MetricStat" in q}
    if periods and periods <= {5, 10, 20, 30}:
        step = min(periods)
    elif age < 15 * DAY:
        step = 60
    elif age < 63 * DAY:
        step = 300
    else:
        step = 3600
    return datetime.fromtimestamp(t - t % step, tz=timezone.utc)


def cloudwatch_cbor(op, body, region):
    """(status, CBOR-able dict) for one CloudWatch RPC v2 CBOR call, on moto's backend."""
    backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][region]
    if op == "PutMetricData":
        backend.put_metric_data(body["Namespace"], body.get("MetricData", []))
        return 200, {}
    if op == "GetMetricData":
        # moto drops the namespace filter when a query has dimensions: a query of a namespace
        # with no such metric answers nothing, as CloudWatch does.
        known = {(md.namespace, md.name) for md in backend.get_all_metrics()}
        unknown = {
            q["Id"]
            for q in body.get("MetricDataQueries", [])
            if "MetricStat" in q
            and (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"]) not in known
        }
        results = backend.get_metric_data(
            queries=body.get("MetricDataQueries", []),
            start_time=rounded_start(body["StartTime"], body.get("MetricDataQueries", [])),
            end_time=body["EndTime"],
            scan_by=body.get("ScanBy") or "TimestampDescending",
        )
        out = []
        for r in results:
            if r["id"] in unknown:
                r = dict(r, timestamps=[], values=[])
            out.append(
                {
                    "Id": r["id"],
                    "Label": r["label"],
                    "Timestamps": [cbor_ts(t) for t in r["timestamps"]],
                    "Values": [float(v) for v in r["values"]],
                    "StatusCode": r["status_code"],
                }
            )
        return 200, {"MetricDataResults": out, "Messages": []}
    return 400, {"__type": "UnknownOperationException", "message": f"{op} is not served by the godwit moto launcher"}


class Launcher:
    def __init__(self):
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            raw = environ["wsgi.input"].read(length)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("wsgi.input_terminated"):
            # The SDK streams larger bodies chunked (no Content-Length); werkzeug de-chunks.
            raw = environ["wsgi.input"].read()
        else:
            raw = b""
        if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            # The SDK compresses large request bodies (PutMetricData over 10 KiB), as real
            # CloudWatch accepts; moto's own handlers expect them plain.
            raw = gzip.decompress(raw)
            environ.pop("HTTP_CONTENT_ENCODING", None)
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))

        if path == "/godwit/faults":
            return self.faults(method, raw, start_response)
        if path == "/moto-api/reset" and method == "POST":
            with LOCK:
                FAULTS.clear()
                INJECTED.clear()
            if HOOKS is not None:
                # Every forwarded mutation done, then the real servers go with moto's state.
                HOOKS.drain()
                HOOKS.call({"op": "reset"})

        region, service = credential_scope(environ)
        cbor_op = re.match(r"^/service/GraniteServiceVersion20100801/operation/(\w+)$", path)
        if cbor_op:
            action = cbor_op.group(1)
        else:
            form = parse_qs(raw.decode("utf-8", "replace")) if raw else {}
            query = parse_qs(environ.get("QUERY_STRING", ""))
            action = (form.get("Action") or query.get("Action") or [""])[0]
            form = {k: v[0] for k, v in form.items()}

        fault = self.take_fault(action)
        if fault:
            status, code, message = fault["status"], fault["code"], fault.get("message", "injected by the test")
            if cbor_op:
                return respond(start_response, status, cbor2.dumps({"__type": code, "message": message}), "application/cbor", CBOR_HEADERS)
            if service == "ec2":
                return respond(start_response, status, ec2_error(code, message), "text/xml")
            return respond(start_response, status, rds_error(code, message), "text/xml")

        if cbor_op:
            try:
                body = cbor2.loads(raw) if raw else {}
                status, out = cloudwatch_cbor(action, body, region)
            except Exception as e:  # moto's errors carry code/message; anything else is a 500
                code = getattr(e, "error_type", None) or getattr(e, "code", None) or type(e).__name__
                status = getattr(e, "code", 400) if isinstance(getattr(e, "code", None), int) else 400
                if not isinstance(code, str):
                    code = type(e).__name__
                out = {"__type": code, "message": getattr(e, "message", None) or str(e)}
            return respond(start_response, status, cbor2.dumps(out), "application/cbor", CBOR_HEADERS)

        if service == "rds":
            extra = self.rds_listing(action, form)
            if extra is not None:
                return respond(start_response, 200, extra, "text/xml")
        return self.moto(environ, start_response)

    def rds_listing(self, action, form):
        if action == "DescribeEngineDefaultParameters":
            fam = form.get("DBParameterGroupFamily", "")
            inner = f"<EngineDefaults>{_x('DBParameterGroupFamily', fam)}{_params_xml(instance_defaults(fam))}</EngineDefaults>"
            return rds_response(action, inner)
        if action == "DescribeEngineDefaultClusterParameters":
            fam = form.get("DBParameterGroupFamily", "")
            inner = f"<EngineDefaults>{_x('DBParameterGroupFamily', fam)}{_params_xml(cluster_defaults(fam))}</EngineDefaults>"
            return rds_response(action, inner)
        if action == "DescribeDBEngineVersions":
            engine = form.get("Engine", "")
            items = []
            for eng, versions in ENGINE_VERSIONS.items():
                if engine and eng != engine:
                    continue
                for v in versions:
                    items.append(
                        "<DBEngineVersion>"
                        + _x("Engine", eng)
                        + _x("EngineVersion", v)
                        + _x("MajorEngineVersion", v.split(".")[0])
                        + _x("DBParameterGroupFamily", family_of(eng, v))
                        + _x("Status", "available")
                        + "</DBEngineVersion>"
                    )
            return rds_response(action, "<DBEngineVersions>" + "".join(items) + "</DBEngineVersions>")
        group = form.get("DBParameterGroupName", "")
        if action == "DescribeDBParameters" and group.startswith("default."):
            return rds_response(action, _params_xml(instance_defaults(group[len("default."):])))
        group = form.get("DBClusterParameterGroupName", "")
        if action == "DescribeDBClusterParameters" and group.startswith("default."):
            return rds_response(action, _params_xml(cluster_defaults(group[len("default."):])))
        return None

    def take_fault(self, action):
        with LOCK:
            queue = FAULTS.get(action)
            if not queue:
                return None
            fault = queue.pop(0)
            INJECTED[action] = INJECTED.get(action, 0) + 1
            return fault

    def faults(self, method, raw, start_response):
        with LOCK:
            if method == "POST":
                f = json.loads(raw or b"{}")
                for _ in range(int(f.get("times", 1))):
                    FAULTS.setdefault(f["action"], []).append(f)
            elif method == "DELETE":
                FAULTS.clear()
                INJECTED.clear()
            body = json.dumps({"injected": INJECTED, "pending": {k: len(v) for k, v in FAULTS.items()}})
        return respond(start_response, 200, body, "application/json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    ap.add_argument("--hooks", help="forward database mutations to this hook service (docs/moto.md)")
    ap.add_argument("--hooks-sync", action="store_true", help="answer a forwarded mutation once it is done")
    args = ap.parse_args()
    if args.hooks:
        enable_hooks(args.hooks, args.hooks_sync)
    server = make_server(args.host, args.port, Launcher(), threaded=True)
    if args.exit_with_stdin:
        # The test process holds our stdin: when it exits (even killed, or a shared server
        # whose guard never drops), stdin reaches EOF and moto goes with it.
        def watch():
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    print(f"ready http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
