"""How every Kafka client of the project authenticates: one object, read from STREAM_APP_*."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

MASK = "***"

_E = TypeVar("_E", bound=StrEnum)


class Secret:
    """A string that never shows itself in a repr, a str, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SecurityProtocol(StrEnum):
    """Kafka's security.protocol."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_sasl(self) -> bool:
        """Whether the client authenticates with a user name and password."""
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    """The SASL mechanisms the worker supports."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class SecurityError(ValueError):
    """The security settings are incomplete or name files that cannot be read."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Protocol, SASL credentials and TLS files shared by every Kafka client."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism = SaslMechanism.PLAIN
    sasl_username: str = ""
    sasl_password: Secret | None = None
    #: Where the password was read from, when it came from a file (a mounted secret).
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None

    @classmethod
    def from_env(cls, get: Callable[[str], str]) -> KafkaSecurity:
        """Read and check the STREAM_APP_SECURITY/SASL/SSL variables through `get`."""
        protocol = _choice(SecurityProtocol, "STREAM_APP_SECURITY_PROTOCOL", get)
        mechanism = _choice(SaslMechanism, "STREAM_APP_SASL_MECHANISM", get)
        username = get("STREAM_APP_SASL_USERNAME")
        inline = get("STREAM_APP_SASL_PASSWORD")
        password_file = _path(get("STREAM_APP_SASL_PASSWORD_FILE"))
        if inline and password_file is not None:
            raise SecurityError(
                "set STREAM_APP_SASL_PASSWORD or STREAM_APP_SASL_PASSWORD_FILE, not both"
            )
        password: Secret | None = Secret(inline) if inline else None
        if password_file is not None:
            try:
                password = Secret(password_file.read_text().rstrip("\r\n"))
            except OSError as exc:
                raise SecurityError(
                    f"STREAM_APP_SASL_PASSWORD_FILE={str(password_file)!r}: "
                    f"cannot read it ({exc.strerror})"
                ) from None
        if protocol.uses_sasl and (not username or password is None):
            raise SecurityError(
                f"STREAM_APP_SECURITY_PROTOCOL={protocol.value} needs STREAM_APP_SASL_USERNAME "
                "and STREAM_APP_SASL_PASSWORD (or STREAM_APP_SASL_PASSWORD_FILE)"
            )
        ca, cert, key = (
            _path(get(name))
            for name in (
                "STREAM_APP_SSL_CA_FILE",
                "STREAM_APP_SSL_CERT_FILE",
                "STREAM_APP_SSL_KEY_FILE",
            )
        )
        if (cert is None) != (key is None):
            raise SecurityError("STREAM_APP_SSL_CERT_FILE and STREAM_APP_SSL_KEY_FILE go together")
        for name, path in (
            ("STREAM_APP_SSL_CA_FILE", ca),
            ("STREAM_APP_SSL_CERT_FILE", cert),
            ("STREAM_APP_SSL_KEY_FILE", key),
        ):
            if path is not None and not path.is_file():
                raise SecurityError(f"{name}={str(path)!r}: no such file")
        return cls(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=username,
            sasl_password=password,
            sasl_password_file=password_file,
            ssl_ca_file=ca,
            ssl_cert_file=cert,
            ssl_key_file=key,
        )

    def to_env(self) -> dict[str, str]:
        """The variables `from_env` reads back into this object (the password in clear)."""
        inline = ""
        if self.sasl_password is not None and self.sasl_password_file is None:
            inline = self.sasl_password.reveal()
        return {
            "STREAM_APP_SECURITY_PROTOCOL": self.protocol.value,
            "STREAM_APP_SASL_MECHANISM": self.sasl_mechanism.value,
            "STREAM_APP_SASL_USERNAME": self.sasl_username,
            "STREAM_APP_SASL_PASSWORD": inline,
            "STREAM_APP_SASL_PASSWORD_FILE": _text(self.sasl_password_file),
            "STREAM_APP_SSL_CA_FILE": _text(self.ssl_ca_file),
            "STREAM_APP_SSL_CERT_FILE": _text(self.ssl_cert_file),
            "STREAM_APP_SSL_KEY_FILE": _text(self.ssl_key_file),
        }

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of an encrypted protocol (system CAs unless a CA file is set)."""
        if not self.protocol.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=None if self.ssl_ca_file is None else str(self.ssl_ca_file)
        )
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            context.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file))
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (consumer, producer, admin)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol.value}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.protocol.uses_sasl:
            assert self.sasl_password is not None  # from_env guarantees it
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism.value,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.reveal(),
            )
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's `broker_credentials` for this protocol (None for PLAINTEXT)."""
        # Imported here so that the settings (and `stream-app --help`) do not import Faust.
        from faust.auth import SASLCredentials, SSLCredentials

        context = self.ssl_context()
        if self.protocol.uses_sasl:
            assert self.sasl_password is not None  # from_env guarantees it
            return SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.reveal(),
                ssl_context=context,
                mechanism=self.sasl_mechanism.value,
            )
        if context is not None:
            return SSLCredentials(context)
        return None


def _choice(enum: type[_E], name: str, get: Callable[[str], str]) -> _E:
    raw = get(name)
    try:
        return enum(raw.upper())
    except ValueError:
        allowed = "|".join(member.value for member in enum)
        raise SecurityError(f"{name}={raw!r}: expected one of {allowed}") from None


def _path(raw: str) -> Path | None:
    return Path(raw) if raw else None


def _text(path: Path | None) -> str:
    return "" if path is None else str(path)
