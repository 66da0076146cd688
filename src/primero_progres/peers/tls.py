"""TLS contexts for DTP's mutual TLS, on both sides of the wire.

DTP pins the thumbprint of a client certificate that UNICEF generates, and it
comes either as PEM files (certificate and key) or as one PKCS#12 (``.pfx``)
bundle. The stdlib ``ssl`` module only loads PEM files, so a PKCS#12 bundle is
read with ``cryptography`` and handed to ``ssl`` through a short-lived private
file whose key is itself encrypted with a random one-time password: the
private key is never written to disk in clear, and the file is gone before
this module returns.

Every problem with local files (missing, unreadable, wrong password, key not
matching the certificate) is a :class:`ConfigurationError`: the process should
refuse to start rather than fail each delivery later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import ConfigurationError


def client_ssl_context(
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    pkcs12_file: Path | None = None,
    pkcs12_password: str | None = None,
    ca: Path | None = None,
) -> ssl.SSLContext:
    """A client context that verifies the server (system CAs, or ``ca``) and presents our identity.

    ``client_cert`` may hold the key too, in which case ``client_key`` can be left out.
    With neither a certificate nor a PKCS#12 bundle the context presents no identity.
    """
    if pkcs12_file is not None and (client_cert is not None or client_key is not None):
        raise ConfigurationError(
            "tls: give either a PEM certificate and key or a PKCS#12 bundle, not both",
            reason="tls_ambiguous_identity",
        )
    if client_key is not None and client_cert is None:
        raise ConfigurationError(
            "tls: a client key was given without a certificate", reason="tls_key_without_cert"
        )
    if pkcs12_password is not None and pkcs12_file is None:
        raise ConfigurationError(
            "tls: a PKCS#12 password was given without a bundle",
            reason="tls_password_without_pkcs12",
        )

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca is not None:
        _load_ca(context, ca, "CA bundle")

    if client_cert is not None:
        _require_file(client_cert, "client certificate")
        if client_key is not None:
            _require_file(client_key, "client key")
        _load_chain(context, client_cert, client_key, password=None)
    elif pkcs12_file is not None:
        _load_pkcs12(context, pkcs12_file, pkcs12_password)
    return context


def server_ssl_context(
    *, cert: Path, key: Path | None = None, client_ca: Path | None = None
) -> ssl.SSLContext:
    """A server context; with ``client_ca`` it refuses clients without a certificate it signed."""
    _require_file(cert, "server certificate")
    if key is not None:
        _require_file(key, "server key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, cert, key, password=None)
    if client_ca is not None:
        _load_ca(context, client_ca, "client CA")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def uvicorn_tls_options(
    *, cert: Path, key: Path | None = None, client_ca: Path | None = None
) -> dict[str, Any]:
    """uvicorn options serving HTTPS, requiring client certificates when ``client_ca`` is set.

    uvicorn builds its own context from file names, so the files are checked here first
    (by building the same context) to fail with a ConfigurationError instead of a traceback.
    """
    server_ssl_context(cert=cert, key=key, client_ca=client_ca)
    options: dict[str, Any] = {"ssl_certfile": str(cert)}
    if key is not None:
        options["ssl_keyfile"] = str(key)
    if client_ca is not None:
        options["ssl_ca_certs"] = str(client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


def _require_file(path: Path, what: str) -> None:
    if not Path(path).is_file():
        raise ConfigurationError(f"tls: {what} not found at {path}", reason="tls_file_missing")


def _load_ca(context: ssl.SSLContext, ca: Path, what: str) -> None:
    """Trust the certificates in ``ca``; a missing or bad file is a ConfigurationError."""
    _require_file(ca, what)
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"tls: cannot load the {what} {ca}", reason="tls_bad_ca") from exc


def _load_chain(
    context: ssl.SSLContext, cert: Path, key: Path | None, *, password: bytes | None
) -> None:
    try:
        context.load_cert_chain(
            certfile=str(cert), keyfile=str(key) if key else None, password=password
        )
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"tls: cannot load the certificate {cert} with its key (not PEM, or wrong key)",
            reason="tls_bad_cert_or_key",
        ) from exc
    except OSError as exc:
        raise ConfigurationError(
            f"tls: cannot read the certificate {cert}", reason="tls_file_unreadable"
        ) from exc


def _load_pkcs12(context: ssl.SSLContext, bundle: Path, password: str | None) -> None:
    _require_file(bundle, "PKCS#12 bundle")
    try:
        data = Path(bundle).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"tls: cannot read the PKCS#12 bundle {bundle}", reason="tls_file_unreadable"
        ) from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"tls: cannot open the PKCS#12 bundle {bundle} (wrong password or not PKCS#12)",
            reason="tls_bad_pkcs12",
        ) from exc
    if key is None or cert is None:
        raise ConfigurationError(
            f"tls: the PKCS#12 bundle {bundle} lacks a private key or a certificate",
            reason="tls_bad_pkcs12",
        )
    one_time = secrets.token_bytes(32).hex().encode()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time),
    )
    pem += cert.public_bytes(serialization.Encoding.PEM)
    for chain_cert in extra or ():
        pem += chain_cert.public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory(prefix="pp-tls-") as directory:
        path = Path(directory) / "identity.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        _load_chain(context, path, None, password=one_time)


def client_certificate(
    *,
    client_cert: Path | None = None,
    pkcs12_file: Path | None = None,
    pkcs12_password: str | None = None,
) -> x509.Certificate | None:
    """The client certificate configured (its first one, from PEM or PKCS#12), or None."""
    try:
        if client_cert is not None:
            return x509.load_pem_x509_certificates(Path(client_cert).read_bytes())[0]
        if pkcs12_file is not None:
            password = pkcs12_password.encode() if pkcs12_password is not None else None
            return pkcs12.load_key_and_certificates(Path(pkcs12_file).read_bytes(), password)[1]
    except (OSError, ValueError, IndexError) as exc:
        raise ConfigurationError(
            "tls: cannot read the client certificate", reason="tls_bad_cert_or_key"
        ) from exc
    return None


class HandshakeRefused(Exception):
    """The server closed the connection right after the handshake: it refused our certificate."""


async def handshake(
    url: str, context: ssl.SSLContext, *, timeout: float = 10.0, settle: float = 1.0
) -> None:
    """Open a TLS connection to ``url``'s host, complete the handshake, and close: nothing is sent.

    With TLS 1.3 a server checks the client certificate after the handshake and its refusal
    arrives as an alert (or a reset) on the first read, so the connection is watched for
    ``settle`` seconds: still open means accepted. Raises ``ssl.SSLError`` (untrusted server,
    refused certificate), ``HandshakeRefused``, ``OSError`` or ``TimeoutError``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        try:
            data = await asyncio.wait_for(reader.read(1), settle)
        except TimeoutError:
            return
        if not data:
            raise HandshakeRefused("the server closed the connection after the handshake")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
