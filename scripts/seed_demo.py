"""Seeds the AWS emulator with a realistic fleet for the demo: about 30 instances over dev, qa and
prod, Linux and Windows, with names, teams and services as tags. Prints one JSON line per instance."""

import argparse
import json

import boto3

FLEET = [
    # environment, name, service, team, windows, count
    ("dev", "checkout-api", "checkout", "payments", False, 3),
    ("dev", "search-worker", "search", "discovery", False, 2),
    ("dev", "build-agent", "ci", "platform", False, 2),
    ("dev", "reporting-win", "reporting", "finance", True, 1),
    ("qa", "checkout-api", "checkout", "payments", False, 2),
    ("qa", "search-worker", "search", "discovery", False, 2),
    ("qa", "ledger-db", "ledger", "payments", False, 1),
    ("qa", "reporting-win", "reporting", "finance", True, 1),
    ("prod", "checkout-api", "checkout", "payments", False, 4),
    ("prod", "search-worker", "search", "discovery", False, 3),
    ("prod", "ledger-db", "ledger", "payments", False, 2),
    ("prod", "bastion", "access", "platform", False, 1),
    ("prod", "reporting-win", "reporting", "finance", True, 2),
    ("prod", "ad-connector-win", "identity", "it", True, 1),
]
STOPPED = {("prod", "search-worker")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    kw = dict(endpoint_url=args.endpoint, region_name=args.region,
              aws_access_key_id="gatekeeper-local", aws_secret_access_key="gatekeeper-local")
    ec2 = boto3.client("ec2", **kw)
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    linux = next(i["ImageId"] for i in images if i.get("Platform") != "windows")
    windows = next(i["ImageId"] for i in images if i.get("Platform") == "windows")
    for env, name, service, team, is_windows, count in FLEET:
        tags = [
            {"Key": "Name", "Value": f"{env}-{name}"},
            {"Key": "Environment", "Value": env},
            {"Key": "Service", "Value": service},
            {"Key": "Team", "Value": team},
        ]
        out = ec2.run_instances(
            ImageId=windows if is_windows else linux,
            InstanceType="m6i.large" if env == "prod" else "t3.medium",
            MinCount=count,
            MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        ids = [i["InstanceId"] for i in out["Instances"]]
        if (env, name) in STOPPED:
            ec2.stop_instances(InstanceIds=ids[:1])
        for instance in out["Instances"]:
            print(json.dumps({
                "id": instance["InstanceId"],
                "name": f"{env}-{name}",
                "environment": env,
                "platform": "windows" if is_windows else "linux",
                "private_ip": instance.get("PrivateIpAddress"),
            }))


if __name__ == "__main__":
    main()
