"""The local stack's own certificate authority and the PostgreSQL server certificate it signs.

The connectors verify the local PostgreSQL exactly as they verify RDS (sslmode=verify-full against the CA file the
config names), so the local stack needs a CA of its own. `ensure_ca` and `ensure_server_certificate` are idempotent:
an existing CA is kept (its key never leaves the state dir, mode 0600), and a server certificate is reissued only
when it is missing, no longer chains to the CA, misses a name or is close to expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from finsight.private_file import write_private

# the names a connector dials locally: both must be in the SAN, or verify-full fails the host name check
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1",)
CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificateAuthority:
    cert_file: Path  # what the config's sslrootcert names
    key_file: Path

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_file.read_bytes())

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca(cert_file: Path, common_name: str = "FinSight local CA") -> CertificateAuthority:
    """The CA at `cert_file` (key beside it, `ca.key`, 0600), created on first use."""
    ca = CertificateAuthority(cert_file, cert_file.with_name("ca.key"))
    if cert_file.is_file() and ca.key_file.is_file():
        os.chmod(ca.key_file, 0o600)
        return ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(ca.key_file, _pem_key(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca


def _server_certificate_current(ca: CertificateAuthority, cert_file: Path, key_file: Path) -> bool:
    if not (cert_file.is_file() and key_file.is_file()):
        return False
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        cert.verify_directly_issued_by(ca.certificate())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    names = set(sans.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    return (
        names >= set(SERVER_NAMES)
        and addresses >= set(SERVER_ADDRESSES)
        and cert.not_valid_after_utc - _now() > RENEW_BEFORE
    )


def ensure_server_certificate(ca: CertificateAuthority, cert_file: Path, key_file: Path) -> bool:
    """A server certificate for 127.0.0.1/localhost signed by `ca`; True when (re)issued."""
    if _server_certificate_current(ca, cert_file, key_file):
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca.certificate()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAMES[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=SERVER_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in SERVER_NAMES]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca.private_key(), hashes.SHA256())
    )
    write_private(key_file, _pem_key(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True
