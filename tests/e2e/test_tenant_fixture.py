"""The tenants fixture itself: each tenant's token reaches its own namespace and nothing else."""

from __future__ import annotations

import pytest

from paramedic import kube


def test_tenant_token_is_confined_to_its_namespace(tenants):
    a, b = tenants
    client = a.client()
    try:
        assert client.list(kube.MONITORED_SERVICES, namespace=a.namespace) == []
        with pytest.raises(kube.ApiError) as err:
            client.list(kube.MONITORED_SERVICES, namespace=b.namespace)
        assert err.value.status == 403
        with pytest.raises(kube.ApiError) as err:
            client.patch(kube.DEPLOYMENTS, "anything", {"spec": {}}, namespace=a.namespace)
        assert err.value.status == 403
    finally:
        client.close()
