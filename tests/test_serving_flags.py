"""`kexport serve` takes tensorflow_model_server's command line as is: its flag spellings in both
`--flag=value` and `--flag value` forms, its booleans, its tuning flags (named once on stderr),
its config files; unknown flags fail. The last test runs the real command as TF Serving's own
test harness would, and talks to it over TCP gRPC, the UNIX socket, REST and Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from exporter.cli import app
from exporter.errors import BadInputError
from serving.client import PredictClient
from serving.options import serve_options
from serving.tfs_flags import normalize_argv, parse_channel_arguments
from tests.cli_helpers import command_of, run
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
# The TF Serving spellings `kexport serve` declares, read from its options as the command does.
DECLARED = command_of(app).commands["serve"].declared_flags()
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"


@pytest.mark.parametrize(("argv", "expected", "tuning"), [
    (["--enable_batching"], ["--enable_batching"], []),
    (["--enable_batching=false"], ["--no-enable-batching"], []),
    (["--enable_model_warmup=false", "bundle"], ["--no-warmup", "bundle"], []),
    (["--prefer_tflite_model", "true"], ["--prefer_tflite_model"], []),
    (["--use_tflite_model=true"], ["--prefer_tflite_model"], []),
    (["--model_base_path=/m", "--model_name", "x"], ["--model_base_path", "/m", "--model_name",
                                                      "x"], []),
    (["--num_load_threads=4", "--tensorflow_session_parallelism", "2", "--flush_filesystem_caches",
      "b"], ["b"], ["--num_load_threads=4", "--tensorflow_session_parallelism=2",
                    "--flush_filesystem_caches"]),
    (["--port=0", "--", "--odd_name"], ["--port=0", "--", "--odd_name"], []),
])
def test_tf_serving_spellings_are_normalized(argv, expected, tuning):
    assert normalize_argv(argv, DECLARED) == (expected, tuning)


@pytest.mark.parametrize(("argv", "message"), [
    (["--no_such_flag=1"], "unknown argument: --no_such_flag=1"),
    (["--enable_batching=yes"], "Couldn't interpret value =yes for flag enable_batching."),
    (["--num_load_threads=four"], "Couldn't interpret value four for flag num_load_threads."),
    (["--saved_model_tags=serve,gpu"], "--saved_model_tags=serve,gpu is not supported"),
    (["--use_alts_credentials"], "--use_alts_credentials is not supported"),
    (["--platform_config_file=/p"], "--platform_config_file is not supported"),
])
def test_unknown_and_unusable_flags_fail(argv, message):
    with pytest.raises(BadInputError) as caught:
        normalize_argv(argv, DECLARED)
    assert str(caught.value).startswith(message)


def test_channel_arguments_as_tf_serving_reads_them():
    assert parse_channel_arguments("grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb") \
        == [("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb")]
    with pytest.raises(BadInputError, match="is not KEY=VALUE"):
        parse_channel_arguments("oops")


def test_config_files_are_read_into_the_options(tmp_path):
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    options = serve_options(None, model_base_path=HALF_PLUS_TWO, monitoring_config_file=monitoring,
                            enable_batching=True,
                            batching_parameters_file=FIXTURES / "batching_config.txt",
                            rest_port=0)
    assert options.path == HALF_PLUS_TWO and options.prometheus_path == "/metrics"
    parameters = options.batching.parameters
    assert options.batching.enabled and parameters.max_batch_size.value == 128
    assert (parameters.batch_timeout_micros.value, parameters.num_batch_threads.value) == (0, 8)
    off = serve_options(None, model_base_path=HALF_PLUS_TWO,
                        monitoring_config_file=FIXTURES / "monitoring_config.txt")
    assert off.prometheus_path == "/monitoring/prometheus/metrics"
    with pytest.raises(BadInputError, match="Error parsing text-format "
                                            "tensorflow.serving.BatchingParameters"):
        serve_options(None, model_base_path=HALF_PLUS_TWO,
                      batching_parameters_file=FIXTURES / "bad_model_config.txt")
    with pytest.raises(BadInputError, match="Pass PATH, or TF Serving's --model_base_path"):
        serve_options(tmp_path, model_config_file=tmp_path / "models.config")
    # The tensorflow/serving image passes a base path; a config file added to its CMD wins.
    both = serve_options(None, model_base_path=Path("/models/default"),
                         model_config_file=tmp_path / "models.config")
    assert both.path == tmp_path / "models.config"


@pytest.mark.parametrize(("args", "message"), [
    (["--rest_api_port=x", str(HALF_PLUS_TWO)], "Invalid value for '--rest-api-port'"),
    (["--bogus_flag", str(HALF_PLUS_TWO)], "unknown argument: --bogus_flag"),
    ([], "Both --model_base_path and --model_config_file are empty"),
    (["--model_config_file", str(FIXTURES / "bad_model_config.txt")],
     "Error parsing text-format tensorflow.serving.ModelServerConfig"),
    (["--ssl_config_file=/nonexistent", str(HALF_PLUS_TWO)], "cannot read --ssl_config_file"),
])
def test_bad_command_lines_exit_2_before_loading(args, message):
    result = run("serve", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()), result.output


def test_version_prints_both_versions():
    # Every boolean spelling normalize_argv writes must be one click accepts.
    spellings = [f"--{name}={value}" for name in sorted(DECLARED.booleans)
                 for value in ("true", "false")]
    result = run("serve", *spellings, "--version")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("TensorFlow ModelServer: kexport serve")
    assert result.stdout.splitlines()[1].startswith("TensorFlow Library: 2.")


@pytest.mark.slow
def test_tf_serving_command_line_runs_unchanged(tmp_path):
    socket_path = tmp_path / "tf-serving.sock"
    with socket.socket(socket.AF_UNIX) as stale:  # a socket file left by an earlier server
        stale.bind(str(socket_path))
    command = [
        sys.executable, "-m", "exporter.cli", "serve", "--port=0", "--rest_api_port=0",
        "--rest_api_timeout_in_ms=5000", f"--grpc_socket_path={socket_path}",
        "--model_name=default", f"--model_base_path={HALF_PLUS_TWO}",
        "--monitoring_config_file", str(FIXTURES / "monitoring_config.txt"),
        "--enable_batching", f"--batching_parameters_file={FIXTURES / 'batching_config.txt'}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
        "--tensorflow_session_parallelism=2", "--num_load_threads", "2", "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        line = server.stdout.readline()
        assert line.startswith('{"address"'), line + server.stdout.read() + server.stderr.read()
        ready = json.loads(line)
        assert ready["host"] == "127.0.0.1" and ready["models"] == {"default": [123]}
        for target in (ready["address"], f"unix:{socket_path}"):
            with PredictClient(target) as client:
                assert client.predict("default", np.array([[2.0]], np.float32)).outputs["y"] == 3
        body = json.dumps({"instances": [2.0, 3.0, 4.0]}).encode()
        with urllib.request.urlopen(f"{ready['rest_url']}/v1/models/default:predict", body) as reply:
            assert json.loads(reply.read()) == {"predictions": [3.0, 3.5, 4.0]}
        with urllib.request.urlopen(f"{ready['rest_url']}/monitoring/prometheus/metrics") as reply:
            assert "# TYPE" in reply.read().decode()
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    notices = [line for line in stderr.splitlines() if "accepted without effect" in line]
    assert notices == [("kexport serve: accepted without effect here: "
                       "--tensorflow_session_parallelism=2, --num_load_threads=2")]



def test_ssl_config_file_serves_tls(tmp_path):
    from serving.predict_job import run_predict
    from serving.server import start_server

    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    ssl_config = tmp_path / "ssl.config"  # TF Serving's SSLConfig holds the PEM text itself
    ssl_config.write_text(f"server_key: {json.dumps(key.read_text())}\n"
                          f"server_cert: {json.dumps(cert.read_text())}\n")
    options = serve_options(None, model_base_path=HALF_PLUS_TWO, ssl_config_file=ssl_config,
                            port=0, poll_seconds=0)
    running = start_server(options=options)
    x = tmp_path / "x.json"
    x.write_text("[[2.0]]")
    try:
        result = run_predict(f"localhost:{running.port}", "default", files=[x], tls=True,
                             ca_cert=str(cert))
        assert json.loads(result.text)["y"]["values"] == [[3.0]]
    finally:
        running.stop()
    ssl_config.write_text('server_key: "only a key"')
    with pytest.raises(BadInputError, match="needs server_key and server_cert"):
        serve_options(None, model_base_path=HALF_PLUS_TWO, ssl_config_file=ssl_config)


def test_unusable_socket_path_fails_start_up(tmp_path):
    from serving.errors import ServingError
    from serving.server import start_server

    with pytest.raises(ServingError, match="Cannot listen on unix:.*--grpc_socket_path"):
        start_server(HALF_PLUS_TWO, port=0, poll_seconds=0,
                     grpc_socket_path=str(tmp_path / "missing" / "dir" / "x.sock"))
