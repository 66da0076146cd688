"""Certificates for real mutual-TLS tests on loopback, made by trustme.

``make_tls_files`` writes a CA, a server certificate for 127.0.0.1, a client
certificate the CA signed (PEM and PKCS#12), and a client certificate signed
by an unrelated CA, so a test can show each case of DTP's mTLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

PKCS12_PASSWORD = "pfx-secret"


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  #: the CA that signed the server and the good client certificate
    server: Path  #: server key + certificate chain, PEM
    client_cert: Path
    client_key: Path
    client_combined: Path  #: key and certificate in one PEM file
    client_pkcs12: Path  #: same identity as client_cert, PKCS#12 with PKCS12_PASSWORD
    stranger_cert: Path  #: a client certificate from an unrelated CA
    stranger_key: Path


def make_tls_files(directory: Path) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    stranger_ca = trustme.CA()
    files = TLSFiles(
        ca=directory / "ca.pem",
        server=directory / "server.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_combined=directory / "client-combined.pem",
        client_pkcs12=directory / "client.p12",
        stranger_cert=directory / "stranger.pem",
        stranger_key=directory / "stranger.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(files.server)
    )
    client = ca.issue_cert("primero-progres-bridge@example.org")
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    client.private_key_and_cert_chain_pem.write_to_path(str(files.client_combined))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    cert = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes())
    files.client_pkcs12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"bridge",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(PKCS12_PASSWORD.encode()),
        )
    )
    stranger = stranger_ca.issue_cert("someone-else@example.org")
    stranger.cert_chain_pems[0].write_to_path(str(files.stranger_cert))
    stranger.private_key_pem.write_to_path(str(files.stranger_key))
    return files
