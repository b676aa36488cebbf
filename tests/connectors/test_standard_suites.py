"""airbyte-cdk's own standard connector tests (airbyte_cdk.test.standard_tests), one suite per source.

The ecosystem's suite, not ours: SourceTestSuiteBase runs spec (with the CDK's spec lint), the config against the
spec, check, discover (with the CDK's catalog checks), a basic read of every stream (records required per stream
and validated against the discovered JSON schema) and a read with a malformed catalog, and after every verb it
looks for any `airbyte_secret` value of the config in the output.

A suite class is generated for each source of environments/local.yaml (the config is the list), driven by three
scenarios the acceptance-test-config.yml of an Airbyte connector would list, built from `finsight connectors
config` against the local stack:
  valid        every section: spec, connection (succeed), discovery, basic_read
  bad_secret   connection: the right host with a wrong password / API key (status failed)
  unreachable  connection: a closed port on the right host (status failed)

The image tests of the suite (docker build + run) are deselected: they build from an Airbyte metadata.yaml and a
published base image, which this repository does not use; our image is built and its entrypoint answered by
tests/connectors/test_dockerfile.py and test_protocol.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from airbyte_cdk.test.standard_tests import ConnectorTestScenario, SourceTestSuiteBase
from airbyte_cdk.test.standard_tests._job_runner import IConnector

from connectors.protocol import protocol_source
from finsight.config import load_environment
from finsight.connector_config import connector_config

pytestmark = pytest.mark.stack
ENV = load_environment("local")
CONNECTORS_ROOT = Path(__file__).resolve().parents[2] / "connectors"
CLOSED_PORT = 1  # nothing listens on tcpmux: a refused connection, not a timeout


def bad_secret(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with a credential the source refuses (inline, as an operator would paste it)."""
    if "database" in config:
        return config | {"username": "finsight", "password": "Wr0ng-standard-suite-pw"}  # pragma: allowlist secret
    return config | {f: f"Wr0ng-standard-suite-{f}" for f in ENV.api_sources[config["source"]].credential_fields}


def unreachable(config: dict[str, Any]) -> dict[str, Any]:
    if "database" in config:
        return config | {"port": CLOSED_PORT}
    return config | {"base_url": f"http://127.0.0.1:{CLOSED_PORT}"}


def scenarios(source: str) -> list[ConnectorTestScenario]:
    valid = connector_config(ENV, source)
    found = []
    for name, config, sections, status in (
        ("valid", valid, ("spec", "connection", "discovery", "basic_read"), "succeed"),
        ("bad_secret", bad_secret(valid), ("connection",), "failed"),
        ("unreachable", unreachable(valid), ("connection",), "failed"),
    ):
        scenario = ConnectorTestScenario(config_dict=config, sections=sections, status=status)
        scenario._id = f"{source}-{name}"  # the test id pytest prints
        found.append(scenario)
    return found


# The command each standard test runs: a scenario is offered only to the tests whose command its sections run
# (the CDK's own hook offers every scenario to every test and skips the rest; same coverage, no skip noise).
TEST_COMMANDS = {
    "test_config_matches_spec": "spec",
    "test_check": "check",
    "test_discover": "discover",
    "test_basic_read": "read",
    "test_fail_read_with_bad_catalog": "read",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" not in metafunc.fixturenames or metafunc.cls is None:
        return
    command = TEST_COMMANDS[metafunc.function.__name__]  # a new standard test: name its command here
    offered = [s for s in metafunc.cls.get_scenarios() if s.runs(command)]
    metafunc.parametrize("scenario", offered, ids=[s.id for s in offered])


class FinsightSourceSuite(SourceTestSuiteBase):
    """The standard suite for one FinSight source, run in-process through the image's protocol entry."""

    source: ClassVar[str]

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return CONNECTORS_ROOT

    @classmethod
    def get_scenarios(cls) -> list[ConnectorTestScenario]:
        return scenarios(cls.source)

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> IConnector:
        return protocol_source(ENV, cls.source)

    # The image tests build from an Airbyte metadata.yaml and base image (see the module docstring): not collected.
    test_docker_image_build_and_spec = None
    test_docker_image_spec_backward_compatibility = None
    test_docker_image_build_and_check = None
    test_docker_image_build_and_config_matches_spec = None
    test_docker_image_build_and_discover = None
    test_docker_image_build_and_read = None

    @pytest.fixture(autouse=True)
    def _stack_running(self, local_stack: Any) -> None:
        """check / discover / read talk to the local stack's PostgreSQL and mock APIs."""


def _suite(source: str) -> type[FinsightSourceSuite]:
    return type(f"TestStandardSuite_{source}", (FinsightSourceSuite,), {"source": source})


for _source in (*ENV.postgres_sources, *ENV.api_sources):
    globals()[f"TestStandardSuite_{_source}"] = _suite(_source)


def test_every_source_has_a_suite_with_all_three_scenarios() -> None:
    """The generated classes cover the config's 16 sources; a source dropped from the loop fails here."""
    suites = [v for v in globals().values() if isinstance(v, type) and issubclass(v, FinsightSourceSuite)]
    assert {s.source for s in suites if s is not FinsightSourceSuite} == {*ENV.postgres_sources, *ENV.api_sources}
    for source in {*ENV.postgres_sources, *ENV.api_sources}:
        assert [s.id for s in scenarios(source)] == [f"{source}-{n}" for n in ("valid", "bad_secret", "unreachable")]
