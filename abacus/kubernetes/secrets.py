"""The Secrets the pods read, mounted as files at /run/secrets/<key> as compose mounts its own.

The operator creates them (docs/operations.md); `dev_secrets` are the committed development
values of secrets/, for a cluster that is only for trying Abacus out.
"""

from __future__ import annotations

from dataclasses import dataclass

from abacus.kubernetes.objects import SECRETS_DIR, Document, FileMode, metadata


@dataclass(frozen=True)
class SecretKey:
    secret: str
    key: str

    @property
    def path(self) -> str:
        """Where a pod that mounts it finds it."""
        return f"{SECRETS_DIR}/{self.key}"


REDIS_PASSWORD = SecretKey("abacus-redis-password", "redis_password")
BALANCER_SECRET = SecretKey("abacus-balancer-secret", "balancer_secret")
# Optional: without it reset is open (and every node warns), as in compose without a token. It
# reaches the nodes as ABACUS_ADMIN_TOKEN, so the value must not end with a newline.
ADMIN_TOKEN = SecretKey("abacus-admin-token", "admin_token")


def volume(name: str, *keys: SecretKey) -> dict[str, object]:
    """One volume of these keys, each at its own file name, read by the pod's user only."""
    return {
        "name": name,
        "projected": {
            "defaultMode": FileMode(0o440),
            "sources": [
                {"secret": {"name": key.secret, "items": [{"key": key.key, "path": key.key}]}}
                for key in keys
            ],
        },
    }


def dev_secrets(redis_password: str, balancer_secret: str) -> list[Document]:
    comment = (
        "DEVELOPMENT ONLY: the committed values of secrets/*.dev.txt, which everybody who has\n"
        "the repository knows. Create your own instead (docs/operations.md)."
    )
    return [
        Document(
            comment,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata(key.secret, "secret"),
                "type": "Opaque",
                "stringData": {key.key: value},
            },
        )
        for key, value in ((REDIS_PASSWORD, redis_password), (BALANCER_SECRET, balancer_secret))
    ]
