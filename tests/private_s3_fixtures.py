"""A private S3 server on loopback: moto with IAM authentication enforced, one IAM user allowed s3:*,
and its access key. Requests signed with another key, a wrong secret, or not signed at all are refused.

moto checks signatures and policies once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served
without (moto's server mode reads it from the environment); the fixture spends exactly those on creating
the user, its policy and its key. One thing moto does not do as AWS does: an unsigned request makes it
fail with a 500 (a KeyError on the missing Authorization header) where AWS answers 403 AccessDenied,
and a 500 is what a client retries as a passing server fault. The server therefore runs behind a small
WSGI layer that answers unsigned requests (no Authorization header, no presigned query) with AWS's 403.

    from private_s3_fixtures import *  # noqa: F401,F403  (private_s3_server)

Run as a script (``python private_s3_fixtures.py HOST PORT``), this file is the server.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

IAM_SETUP_ACTIONS = 3  # create_user, put_user_policy, create_access_key: then every request is authenticated
USER = "atl08-reader"
REGION = "us-east-1"
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
                 b'</Error>')

__all__ = ["PrivateS3", "private_s3_server"]


@dataclass(frozen=True)
class PrivateS3:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    log: Path

    def client(self, access_key_id=None, secret_access_key=None):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=access_key_id or self.access_key_id,
                            aws_secret_access_key=secret_access_key or self.secret_access_key)

    def config(self, bucket: str, create: bool = True):
        """An engine configuration for ``bucket`` with the user's keys (created when ``create``)."""
        from canopy_explorer.plugin.core.lidar.config import DatabaseConfig

        if create:
            self.client().create_bucket(Bucket=bucket)
        return DatabaseConfig(
            storage_type="s3", s3_bucket=bucket, url=self.endpoint, s3_region=REGION, source="private test bucket",
            s3_settings={"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key,
                         "connect_timeout_ms": "3000", "connect_max_tries": "2"},
        ).with_changes()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="session")
def private_s3_server(tmp_path_factory):
    """The private server, its IAM user's access key, stopped at the end of the session."""
    import boto3
    import botocore.exceptions

    port = _free_port()
    log_path = tmp_path_factory.mktemp("private_s3") / "moto.log"
    log = open(log_path, "w")
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(IAM_SETUP_ACTIONS))
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "127.0.0.1", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # moto's own API is never authenticated nor counted
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the private S3 server did not start: see {log_path}")
        if process.poll() is not None:
            raise RuntimeError(f"the private S3 server exited with status {process.returncode}: see {log_path}")

        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="atl08-s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        server = PrivateS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], log_path)

        # From here on the server is private: prove it before any test relies on it.
        server.client().list_buckets()
        for wrong in ((key["AccessKeyId"], "not the secret"), ("AKIAUNKNOWNKEY000000", key["SecretAccessKey"])):
            with pytest.raises(botocore.exceptions.ClientError):
                server.client(*wrong).list_buckets()
        assert _status(f"{endpoint}/") == 403, "the private S3 server answers unsigned requests"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def refusing_unsigned(application):
    """``application`` behind AWS's answer to an unsigned request: 403 AccessDenied (moto's own API excepted)."""
    def refuse(environ, start_response):
        signed = "HTTP_AUTHORIZATION" in environ or "X-Amz-Signature=" in environ.get("QUERY_STRING", "")
        if signed or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return application(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(ACCESS_DENIED)))])
        return [ACCESS_DENIED]

    return refuse


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    run_simple(host, port, refusing_unsigned(DomainDispatcherApplication(create_backend_app)), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
