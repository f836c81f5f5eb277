"""Identity resolution: emails, phone numbers and external ids to customer ids."""

from valeur_monitor.identity.resolve import (
    KINDS,
    Identity,
    IdentityBook,
    Resolution,
    Resolver,
    derive_customer,
    identity_hash,
    normalise,
)

__all__ = ["KINDS", "Identity", "IdentityBook", "Resolution", "Resolver", "derive_customer",
           "identity_hash", "normalise"]
