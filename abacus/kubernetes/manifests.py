"""Every Kubernetes object of Abacus, in the order `kubectl apply` should meet them.

The objects carry no namespace: `kubectl apply --namespace NS` puts them anywhere, and the
balancer learns its namespace from the Downward API. What differs between clusters is a
parameter of the rendering: the node image, and the cluster's DNS domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from abacus.kubernetes import balancer, nodes, redis
from abacus.kubernetes.objects import Document, selector

# kubeadm's, kind's and most managed clusters' default.
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Options:
    image: str = nodes.DEFAULT_IMAGE
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


def documents(options: Options) -> list[Document]:
    return [
        *redis.documents(client_selector=selector(nodes.COMPONENT)),
        *nodes.documents(options.image),
        *balancer.documents(options.cluster_domain),
    ]
