"""The contract tests every generator, guardrail and connector runs, shipped for plugins.

A plugin's tests subclass the base of its kind and provide its fixtures (docs/plugins.md):

    from faceloop.testing import GeneratorContract

    class TestSdxlLora(GeneratorContract):
        @pytest.fixture
        def generator(self) -> Generator:
            return SdxlLoraGenerator(tiny=True)

This package imports pytest (and, for ConnectorContract, needs pytest-asyncio), which are
test dependencies, not faceloop's: faceloop itself never imports it, only test suites do.
"""

import pytest

# Plain asserts in the contracts report the compared values, as in a test file, when
# imported under pytest; must run before the submodules are imported.
pytest.register_assert_rewrite(
    "faceloop.testing.connectors", "faceloop.testing.generators", "faceloop.testing.guardrails"
)

from .connectors import ConnectorContract  # noqa: E402
from .generators import GeneratorContract  # noqa: E402
from .guardrails import GuardrailContract  # noqa: E402

__all__ = ["ConnectorContract", "GeneratorContract", "GuardrailContract"]
