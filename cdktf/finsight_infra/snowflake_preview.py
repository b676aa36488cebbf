"""Which Snowflake Terraform provider preview features a stack must enable, derived from what it synthesizes.

The provider refuses a preview resource or data source unless its feature (`<type>_resource` / `<type>_datasource`)
is listed in the provider block's `preview_features_enabled` (registry docs, snowflakedb/snowflake 2.22.0,
#preview_features_enabled). Which types are preview changes between provider versions (2.22.0 promoted
snowflake_current_account, snowflake_external_volume and snowflake_storage_integration_aws to stable, and promoted
names will be rejected after the next major version), so the lists are read from the pinned provider binding itself
(cdktn-provider-snowflake quotes that docs field verbatim) instead of being typed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from cdktn import TerraformDataSource, TerraformResource, TerraformStack
from cdktn_provider_snowflake.provider import SnowflakeProviderConfig

_PREVIEW = re.compile(r"Preview features that can be enabled are: (.*?)\. Promoted features", re.S)
_PROMOTED = re.compile(r"Promoted features that are stable and are enabled by default are: (.*?)\. Promoted", re.S)
_NAME = re.compile(r"``(snowflake_\w+)``")


@cache
def provider_features() -> tuple[frozenset[str], frozenset[str]]:
    """(preview, promoted) feature names of the pinned provider version."""
    doc = SnowflakeProviderConfig.preview_features_enabled.__doc__ or ""
    preview, promoted = _PREVIEW.search(doc), _PROMOTED.search(doc)
    if preview is None or promoted is None:  # a provider bump changed the docs' wording: read them again
        raise RuntimeError("cannot read the preview feature list of cdktn-provider-snowflake's provider docs")
    return frozenset(_NAME.findall(preview.group(1))), frozenset(_NAME.findall(promoted.group(1)))


def feature_name(tf_type: str, data_source: bool) -> str:
    return f"{tf_type}_{'datasource' if data_source else 'resource'}"


def required_features(used: Iterable[tuple[str, bool]]) -> list[str]:
    """The preview features for (terraform type, is data source) pairs: exactly those still in preview."""
    preview, _ = provider_features()
    return sorted({f for t, ds in used if (f := feature_name(t, ds)) in preview})


def used_types(stack: TerraformStack) -> set[tuple[str, bool]]:
    """Every Snowflake resource and data source type constructed in the stack so far."""
    out = set()
    for node in stack.node.find_all():
        if isinstance(node, TerraformResource | TerraformDataSource) and node.terraform_resource_type.startswith(
            "snowflake_"
        ):
            out.add((node.terraform_resource_type, isinstance(node, TerraformDataSource)))
    return out
