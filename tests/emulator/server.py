"""The AWS emulator for Gatekeeper's tests and demo: moto's server with the additions the product needs.

moto answers EC2 and SSM through the real AWS SDKs, but it lacks or bends a few things Gatekeeper
relies on. This launcher runs moto's own WSGI application in-process and adds, without touching the
product:

* The access key id ``GKTEST00`` + twelve digits names the account, so that parallel tests each get
  an account of their own on one server (moto otherwise puts every unknown key in one account).
* ``DescribeInstanceInformation`` (moto has none): every EC2 instance of the region, ``Online`` when
  running, ``ConnectionLost`` otherwise, or whatever ``POST /_gatekeeper/agents`` set.
* ``SendCommand`` with ``InstanceIds`` targets those instances only (moto targets every instance of the
  region when no ``Targets`` are given).
* ``ListDocumentVersions`` and ``CancelCommand`` (moto has neither).
* The Windows create document's output: a generated password encrypted to the ``passwordKey``
  parameter, as the PowerShell script prints it (``GET /_gatekeeper/passwords`` tells what it was).
* ``GetCommandInvocation`` answers ``InvocationDoesNotExist`` for the first look at a fresh invocation,
  as SSM does right after ``SendCommand``, then the result; ``POST /_gatekeeper/outcomes`` scripts
  other results (``Failed``, ``InProgress``, ``TimedOut`` …) per instance and document, and
  ``POST /_gatekeeper/throttle`` makes an account's next N calls fail with ``ThrottlingException``.

Control endpoints (JSON):
  POST /_gatekeeper/agents    {"i-…": "ConnectionLost", …}
  POST /_gatekeeper/outcomes  [{"instance_id": "i-…", "document": "Gatekeeper-LinuxRemoveUser",
                                "status": "Failed", "stderr": "…", "times": 1}]   (times -1: always;
                                "for_looks": N: that status for N looks, then Success)
  POST /_gatekeeper/throttle  {"account": "123456789012", "calls": 3}
  GET  /_gatekeeper/passwords the passwords Windows creates "generated", by "command id/instance id"
  POST /_gatekeeper/reset     forget everything above (moto's own state: POST /moto-api/reset)
  GET  /_gatekeeper/health
"""

import argparse
import base64
import json
import secrets
import os
import re
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.core.exceptions import JsonRESTError
from moto.ec2.models import ec2_backends
from moto.iam import models as iam_models
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ssm import models as ssm_models
from moto.ssm import responses as ssm_responses
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

LOCK = threading.Lock()
STATE = {
    "agents": {},  # instance id -> ping status
    "outcomes": [],  # scripted invocation results
    "assigned": {},  # (command id, instance id) -> outcome
    "looks": {},  # (command id, instance id) -> GetCommandInvocation calls so far
    "throttle": {},  # account id -> next N SSM command calls fail with ThrottlingException
    "passwords": {},  # "command id/instance id" -> the password a Windows create "generated"
}


def reset_state():
    with LOCK:
        STATE["agents"].clear()
        STATE["outcomes"].clear()
        STATE["assigned"].clear()
        STATE["looks"].clear()
        STATE["throttle"].clear()
        STATE["passwords"].clear()


def take_throttle(account_id):
    with LOCK:
        if STATE["throttle"].get(account_id, 0) > 0:
            STATE["throttle"][account_id] -= 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")


# --- Accounts: access key GKTEST00<12 digits> means that account, so that tests are isolated -------
_original_account = iam_models.get_account_id_from


def _account_from_key(access_key):
    match = re.fullmatch(r"GKTEST00([0-9]{12})", access_key or "")
    if match:
        return match.group(1)
    return _original_account(access_key)


iam_models.get_account_id_from = _account_from_key


# --- SendCommand: InstanceIds means those instances, not the whole region -------------------------
_original_targets = ssm_models.Command._get_instance_ids_from_targets


def _targets_only_when_given(self):
    return _original_targets(self) if self.targets else []


ssm_models.Command._get_instance_ids_from_targets = _targets_only_when_given

_original_send = ssm_models.SimpleSystemManagerBackend.send_command


def _send_command(self, *args, **kwargs):
    take_throttle(self.account_id)
    # As SSM does: the whole call fails when one instance cannot take commands (unknown, stopped,
    # terminated).
    instance_ids = kwargs.get("instance_ids") or []
    if instance_ids:
        ec2 = ec2_backends[self.account_id][self.region_name]
        running = {i.id for i in ec2.all_instances() if i.state == "running"}
        invalid = [i for i in instance_ids if i not in running]
        if invalid:
            raise JsonRESTError(
                "InvalidInstanceId",
                f"Instances {invalid} not in a valid state for account {self.account_id}",
            )
    return _original_send(self, *args, **kwargs)


ssm_models.SimpleSystemManagerBackend.send_command = _send_command

# --- GetCommandInvocation: "not yet" first, then the real or scripted result ----------------------
_original_invocation = ssm_models.SimpleSystemManagerBackend.get_command_invocation


def _scripted(command, instance_id):
    key = (command.command_id, instance_id)
    with LOCK:
        if key in STATE["assigned"]:
            return STATE["assigned"][key]
        for outcome in STATE["outcomes"]:
            if outcome["instance_id"] != instance_id:
                continue
            if outcome.get("document") and outcome["document"] != command.document_name:
                continue
            if outcome.get("times", 1) == 0:
                continue
            if outcome.get("times", 1) > 0:
                outcome["times"] = outcome.get("times", 1) - 1
            STATE["assigned"][key] = outcome
            return outcome
    return None


def _get_command_invocation(self, command_id, instance_id, plugin_name):
    take_throttle(self.account_id)
    command = self.get_command_by_id(command_id)
    invocation = dict(_original_invocation(self, command_id, instance_id, plugin_name))
    key = (command_id, instance_id)
    with LOCK:
        looks = STATE["looks"].get(key, 0)
        STATE["looks"][key] = looks + 1
    if looks == 0:
        raise JsonRESTError(
            "InvocationDoesNotExist",
            "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation",
        )
    outcome = _scripted(command, instance_id)
    # "for_looks": N: the scripted status holds for N looks after the first, then the command succeeds
    # (a command that runs for a while).
    if outcome and outcome.get("for_looks") is not None and looks > outcome["for_looks"]:
        outcome = None
    if not outcome and (command.document_name or "").endswith("WindowsCreateUser"):
        invocation["StandardOutputContent"] = _windows_output(command, instance_id)
    if outcome:
        invocation["Status"] = outcome["status"]
        invocation["StatusDetails"] = outcome.get("details", outcome["status"])
        invocation["StandardErrorContent"] = outcome.get("stderr", "")
        invocation["ResponseCode"] = 0 if outcome["status"] == "Success" else 1
    return invocation


ssm_models.SimpleSystemManagerBackend.get_command_invocation = _get_command_invocation


def _windows_output(command, instance_id):
    """What the Windows create document prints: a password generated "on the instance", encrypted with
    RSA-OAEP (SHA-1) to the one-time key passed as the passwordKey parameter."""
    key = f"{command.command_id}/{instance_id}"
    with LOCK:
        password = STATE["passwords"].get(key)
        if password is None:
            password = "Gk" + secrets.token_urlsafe(18) + "!7"
            STATE["passwords"][key] = password
    modulus = command.parameters.get("passwordKey", [""])[0]
    public = rsa.RSAPublicNumbers(65537, int.from_bytes(base64.b64decode(modulus), "big")).public_key()
    cipher = public.encrypt(
        password.encode(),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    user = command.parameters.get("username", ["?"])[0]
    return f"GATEKEEPER-PASSWORD:{base64.b64encode(cipher).decode()}\ngatekeeper: {user} is ready\n"


# --- DescribeInstanceInformation ------------------------------------------------------------------
def _describe_instance_information(self):
    ec2 = ec2_backends[self.current_account][self.region]
    items = []
    with LOCK:
        agents = dict(STATE["agents"])
    for instance in ec2.all_instances():
        if instance.state == "terminated":
            continue
        default = "Online" if instance.state == "running" else "ConnectionLost"
        windows = instance.platform == "windows"
        items.append(
            {
                "InstanceId": instance.id,
                "PingStatus": agents.get(instance.id, default),
                "LastPingDateTime": time.time(),
                "AgentVersion": "3.3.1142.0",
                "IsLatestVersion": True,
                "PlatformType": "Windows" if windows else "Linux",
                "PlatformName": "Microsoft Windows Server 2022 Datacenter" if windows else "Amazon Linux",
                "PlatformVersion": "10.0.20348" if windows else "2023",
                "ResourceType": "EC2Instance",
                "IPAddress": instance.private_ip,
                "ComputerName": getattr(instance, "private_dns", None) or instance.id,
            }
        )
    return json.dumps({"InstanceInformationList": items})


ssm_responses.SimpleSystemManagerResponse.describe_instance_information = _describe_instance_information


# --- ListDocumentVersions and CancelCommand (moto has neither) ----------------------------------
def _list_document_versions(self):
    name = self._get_param("Name")
    documents = self.ssm_backend._documents.get(name)
    if documents is None:
        raise JsonRESTError("InvalidDocument", "The specified document does not exist.")
    versions = []
    for version, document in sorted(documents.versions.items(), key=lambda kv: int(kv[0])):
        versions.append(
            {
                "Name": name,
                "DocumentVersion": version,
                "IsDefaultVersion": version == documents.default_version,
                "DocumentFormat": document.document_format,
                "Status": "Active",
            }
        )
    return json.dumps({"DocumentVersions": versions})


def _cancel_command(self):
    command_id = self._get_param("CommandId")
    instance_ids = self._get_param("InstanceIds") or []
    command = self.ssm_backend.get_command_by_id(command_id)
    for invocation in command.invocations:
        if not instance_ids or invocation["InstanceId"] in instance_ids:
            key = (command_id, invocation["InstanceId"])
            with LOCK:
                STATE["assigned"][key] = {"status": "Cancelled", "details": "Cancelled"}
    return json.dumps({})


ssm_responses.SimpleSystemManagerResponse.list_document_versions = _list_document_versions
ssm_responses.SimpleSystemManagerResponse.cancel_command = _cancel_command


# --- control endpoints ----------------------------------------------------------------------------
class WithControl:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_gatekeeper/"):
            return self.app(environ, start_response)
        request = Request(environ)
        body = request.get_json(silent=True)
        if path == "/_gatekeeper/health":
            response = {"status": "ok"}
        elif path == "/_gatekeeper/passwords":
            with LOCK:
                response = dict(STATE["passwords"])
        elif path == "/_gatekeeper/reset":
            reset_state()
            response = {"status": "reset"}
        elif path == "/_gatekeeper/agents" and isinstance(body, dict):
            with LOCK:
                STATE["agents"].update(body)
            response = {"agents": STATE["agents"]}
        elif path == "/_gatekeeper/outcomes" and isinstance(body, list):
            with LOCK:
                STATE["outcomes"].extend(body)
            response = {"outcomes": len(STATE["outcomes"])}
        elif path == "/_gatekeeper/throttle" and isinstance(body, dict):
            with LOCK:
                STATE["throttle"][str(body.get("account", ""))] = int(body.get("calls", 0))
            response = {"throttle": STATE["throttle"]}
        else:
            return Response(json.dumps({"error": "unknown control call"}), 400, mimetype="application/json")(
                environ, start_response
            )
        return Response(json.dumps(response), 200, mimetype="application/json")(environ, start_response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process ends")
    args = parser.parse_args()
    if args.exit_with_parent:
        parent = os.getppid()

        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        WithControl(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
