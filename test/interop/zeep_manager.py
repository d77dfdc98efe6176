#!/usr/bin/python3
"""Drives a workspace through a VW Manager with python3-zeep, step by step.

zeep loads the WorkspaceManagerService WSDL from its live ?wsdl URL (WSRF 1.2, or GT 4.0
with ?wsdl&dialect=gt4), fetching every imported schema over HTTP, and calls the
operations through its service proxy. The workspace is named by an EPR file (the
wsa:EndpointReference document `vws create -o` and GT-style tools keep), in the
WS-Addressing version of the dialect; its children are sent, as they are, as the
content of each request's WorkspaceReference (vw:EndpointReferenceContainerType, a
sequence of any elements).

The Manager is a singleton service: requests carry the dialect's addressing headers
(zeep_client.Client) but no resource key; the workspace is named in the body.

Scenario (a line of JSON on stdout after each step; the caller checks it against the
host and answers "ok" on stdin before the next step, anything else stops the script):

  deploy            Deploy (no InitialState)
  pauseFault        Pause of the shut-down workspace: a WorkspaceStateFault
  start             Start
  console           GetResourceProperty mgr:DeployedWorkspaces until the workspace's
                    ConsoleTail shows --expect
  pause, unpause    Pause, Unpause
  serialize         Shutdown Mode Serialize
  undeploy          Undeploy
  restore           Deploy InitialState running, then the ConsoleTail until it shows a
                    tick line
  shutdown          Shutdown Mode --shutdown-mode (GracePeriod --grace when given)
  undeployAgain     Undeploy
  unknownFault      Deploy of an EPR whose WorkspaceKey the Repository does not know
  garbledFault      Deploy of a WorkspaceReference that is no EPR (no wsa:Address)

A fault is reported as zeep_client.Client.parse_fault reads it (its detail parsed with
the element the WSDL declares), plus the CurrentState and RequestedState of a
WorkspaceStateFault. Anything unexpected exits non-zero with the reason (and the last
exchange) on stderr.
"""

import argparse
import copy
import json
import os
import re
import sys
import time
import uuid

from lxml import etree
import zeep.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zeep_client  # noqa: E402  (the dialects, headers, reply and fault checks)
from zeep_client import DIALECTS, VW, Failure, values, text  # noqa: E402

MGR = "http://vws.dev/ns/2026/manager"
VWF = "http://vws.dev/ns/2026/faults"
TICK = re.compile(r"^tick \d+\s*$", re.M)


class ManagerClient(zeep_client.Client):
    """zeep_client.Client for the Manager: the same addressing, no resource key."""

    REQUIRED_OPS = ("GetResourceProperty", "Deploy", "Start", "Pause", "Unpause", "Shutdown", "Undeploy")

    def __init__(self, wsdl_url, dialect):
        super().__init__(wsdl_url, dialect)
        self.client.set_ns_prefix("mgr", MGR)

    def headers(self, operation, key):
        return [h for h in super().headers(operation, "") if h.tag != "{%s}WorkspaceKey" % VW]


def read_epr(path, dialect):
    """The children of the EPR file's wsa:EndpointReference, and its WorkspaceKey."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    root = etree.parse(path, parser).getroot()
    wsa = DIALECTS[dialect]["wsa"]
    if root.tag != "{%s}EndpointReference" % wsa:
        raise Failure("%s holds %s, not a %s EndpointReference" % (path, root.tag, wsa))
    key = root.find("{%s}%s/{%s}WorkspaceKey" % (
        wsa, "ReferenceProperties" if dialect == "gt4" else "ReferenceParameters", VW))
    if key is None:
        raise Failure("%s has no vw:WorkspaceKey reference" % path)
    return [c for c in root if isinstance(c.tag, str)], (key.text or "").strip()


class Run:
    def __init__(self, args):
        self.args = args
        self.m = ManagerClient(args.wsdl, args.dialect)
        self.epr, self.key = read_epr(args.epr, args.dialect)
        self.epr_type = self.m.client.get_type("{%s}EndpointReferenceContainerType" % VW)

    def report(self, step, **fields):
        """Print the step's report and wait for the caller's go-ahead."""
        fields["step"] = step
        print(json.dumps(fields, sort_keys=True), flush=True)
        answer = sys.stdin.readline().strip()
        if answer != "ok":
            raise Failure("the caller stopped the scenario after %s: %r" % (step, answer))

    def call(self, op, epr=None, **kwargs):
        # copies: zeep moves the lxml elements it is given into the request envelope.
        # The wildcard's elements go in as the type's _value_1 (a bare list would be
        # read as the values of WorkspaceReference itself, and all but one dropped).
        ref = [copy.deepcopy(c) for c in (self.epr if epr is None else epr)]
        return self.m.call(op, None, WorkspaceReference=self.epr_type(_value_1=ref), **kwargs)

    def state(self, op, **kwargs):
        """The State of a response whose only child it is (zeep hands back the value
        of a one-element response itself)."""
        r = self.call(op, **kwargs)
        return r if isinstance(r, str) else r.State

    def fault(self, op, epr=None, **kwargs):
        try:
            self.call(op, epr, **kwargs)
        except zeep.exceptions.Fault as f:
            out = self.m.parse_fault(f)
            entry = f.detail[0]
            for local in ("CurrentState", "RequestedState"):
                out[local] = (entry.findtext("{%s}%s" % (VWF, local)) or "").strip()
            return out
        raise Failure("%s succeeded but a fault was expected" % op)

    def host_workspace(self):
        """This workspace's mgr:Workspace in the host's DeployedWorkspaces, as zeep
        parsed it with the schema's DeployedWorkspacesType (None when absent)."""
        got = self.m.call("GetResourceProperty", None, "mgr:DeployedWorkspaces")
        if list(values(self.m, got)) != ["{%s}DeployedWorkspaces" % MGR]:
            raise Failure("GetResourceProperty mgr:DeployedWorkspaces returned %s" % sorted(values(self.m, got)))
        deployed = got[0] if isinstance(got, list) else got
        if isinstance(deployed, etree._Element):
            raise Failure("zeep did not parse mgr:DeployedWorkspaces with its schema type: %s" %
                          etree.tostring(deployed).decode())
        for w in deployed.Workspace or []:
            if w.Key == self.key:
                return w
        return None

    def wait_tail(self, what, ok):
        """Poll the ConsoleTail resource property until ok accepts it."""
        deadline = time.monotonic() + self.args.timeout
        polls = 0
        while True:
            polls += 1
            w = self.host_workspace()
            tail = "" if w is None or w.ConsoleTail is None else w.ConsoleTail
            if ok(tail):
                return {"tail": tail, "hostState": None if w is None else w.State, "polls": polls}
            if time.monotonic() > deadline:
                raise Failure("the ConsoleTail did not show %s within %ss; it shows %r" % (what, self.args.timeout, tail))
            time.sleep(0.3)

    def scenario(self):
        r = self.call("Deploy")
        self.report("deploy", state=r.State, deployment=r.Deployment, host=r.Host)

        self.report("pauseFault", fault=self.fault("Pause"))

        self.report("start", state=self.state("Start"))

        self.report("console", **self.wait_tail(
            repr(self.args.expect), lambda t: self.args.expect in t and TICK.search(t) is not None))

        self.report("pause", state=self.state("Pause"))
        self.report("unpause", state=self.state("Unpause"))
        self.report("serialize", state=self.state("Shutdown", Mode="Serialize"))

        r = self.call("Undeploy")
        self.report("undeploy", state=r.State, deployment=r.Deployment, overlayDigest=r.OverlayDigest)

        r = self.call("Deploy", InitialState="running")
        self.report("restore", state=r.State, deployment=r.Deployment, host=r.Host,
                    **self.wait_tail("a tick line", lambda t: TICK.search(t) is not None))

        kwargs = {"Mode": self.args.shutdown_mode}
        if self.args.grace:
            kwargs["GracePeriod"] = self.args.grace
        self.report("shutdown", state=self.state("Shutdown", **kwargs))

        r = self.call("Undeploy")
        self.report("undeployAgain", state=r.State, deployment=r.Deployment, overlayDigest=r.OverlayDigest)

        # The same EPR with a key no workspace has.
        unknown = [copy.deepcopy(c) for c in self.epr]
        key = "no-such-" + uuid.uuid4().hex[:12]
        for c in unknown:
            for k in c.iter("{%s}WorkspaceKey" % VW):
                k.text = key
        self.report("unknownFault", fault=self.fault("Deploy", unknown), key=key)

        # A reference with a misspelt Address: not an EPR of any version.
        wsa = self.m.d["wsa"]
        garbled = etree.Element("{%s}Adress" % wsa)
        garbled.text = self.epr[0].text
        self.report("garbledFault", fault=self.fault("Deploy", [garbled] + self.epr[1:]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsdl", required=True,
                   help="the Manager's live WSDL URL, e.g. http://host/wsrf/services/WorkspaceManagerService?wsdl")
    p.add_argument("--dialect", required=True, choices=sorted(DIALECTS))
    p.add_argument("--epr", required=True, help="EPR file of the workspace, in the dialect's WS-Addressing version")
    p.add_argument("--expect", required=True, help="text the job writes on the console once it runs")
    p.add_argument("--shutdown-mode", default="Trash", choices=("Normal", "Trash"),
                   help="how the restored workspace is shut down")
    p.add_argument("--grace", default="", help="GracePeriod of that shutdown, an xs:duration")
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for the console")
    args = p.parse_args()
    run = None
    try:
        run = Run(args)
        run.scenario()
    except Failure as e:
        print("zeep_manager: %s" % e, file=sys.stderr)
        zeep_client.dump_last([run.m] if run else [])
        return 1
    except zeep.exceptions.Fault as f:
        print("zeep_manager: unexpected fault %s: %s" % (f.code, f.message), file=sys.stderr)
        zeep_client.dump_last([run.m] if run else [])
        return 1
    print(json.dumps({"step": "done"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
