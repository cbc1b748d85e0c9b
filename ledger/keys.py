"""Signing and verifier keys of checkpoints: BLS12-381 with proof of possession, named and
identified as C2SP signed-note keys, with their text and file forms.

Pure: the standard library and py_ecc. A secret key enters and leaves only as text a caller passes;
nothing here reads files, the clock or the environment (`generate` without a seed asks `secrets`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from py_ecc.bls.ciphersuites import G2ProofOfPossession as _Bls
from py_ecc.bls.g2_primitives import signature_to_G2, subgroup_check
from py_ecc.optimized_bls12_381.optimized_curve import curve_order, is_inf

from ledger.errors import VerificationError

# The IETF ciphersuite (draft-irtf-cfrg-bls-signature §4.2.3): minimal-pubkey-size, proof of
# possession. Every signer of a checkpoint signs the same note body, so their signatures aggregate
# into one and are checked with one FastAggregateVerify; the proof of possession is what makes
# that safe against a party who picks its public key to cancel out the others' (a rogue key).
CIPHERSUITE = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
ALGORITHM = "bls12-381-g2-pop"

# C2SP signed-note §Signature types assigns single bytes to its own algorithms (0x01 Ed25519, 0x02
# ECDSA, 0x04 and 0x06 cosignatures, …) and reserves 0xff for "signature types without an
# identifier byte assigned by this specification", RECOMMENDED "followed by a longer identifier
# that is unlikely to collide". BLS has no byte of its own, so Settle's type is 0xff followed by
# the ciphersuite's name: it can never collide with a byte C2SP assigns later.
SIGNATURE_TYPE = b"\xff" + CIPHERSUITE

PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
SECRET_SIZE = 32
KEY_ID_SIZE = 4
MINIMUM_SEED_SIZE = 32  # KeyGen's IKM "MUST be at least 32 bytes" (draft-irtf-cfrg-bls §2.3)

KEY_FILE_FORMAT = "settle.key/v1"
_KEY_FILE_FIELDS = ("format", "name", "algorithm", "secret", "public")


def check_key_name(name: str) -> None:
    """C2SP signed-note §Format: a key name is non-empty, without Unicode spaces or '+'; and, as
    no note may hold one, without control characters. ValueError otherwise."""
    if (
        not name
        or "+" in name
        or any(character.isspace() or ord(character) < 0x20 for character in name)
        or "\x7f" in name
    ):
        raise ValueError(f"expected a key name without spaces or '+', got {name!r}")


def key_id(name: str, signature_type: bytes, public: bytes) -> bytes:
    """C2SP signed-note §Signatures: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + signature_type + public).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierKey:
    """A named BLS12-381 public key (48 bytes, compressed G1), as a note signer is known by.

    Its text form is C2SP's vkey: `<name>+<hex key id>+<base64(signature type || public key)>`.
    """

    name: str
    public: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public, bytes) or not _is_valid_public_key(self.public):
            raise ValueError(
                f"expected a BLS12-381 public key ({PUBLIC_KEY_SIZE} bytes, a point of G1) for "
                f"{self.name}, got {self.public!r}"
            )

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, SIGNATURE_TYPE, self.public)

    def __str__(self) -> str:
        key_data = base64.b64encode(SIGNATURE_TYPE + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{key_data}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """A vkey as `str()` writes it; the key id must be the one its name and key give."""
        name, plus, rest = text.partition("+")
        hex_id, plus_again, key_data = rest.partition("+")
        if not (plus and plus_again and len(hex_id) == 2 * KEY_ID_SIZE):
            raise VerificationError(f"expected <name>+<8 hex digits>+<base64 key>, got {text!r}")
        declared_id = _strict_hex(hex_id, f"key id of {name}")
        data = strict_base64(key_data, f"key of {name}")
        if not data.startswith(SIGNATURE_TYPE):
            raise VerificationError(
                f"expected a key of type {SIGNATURE_TYPE[:1].hex()} {CIPHERSUITE.decode()} for "
                f"{name}, got one starting {data[:1].hex() or 'with nothing'}"
            )
        try:
            key = cls(name=name, public=data[len(SIGNATURE_TYPE) :])
        except ValueError as error:
            raise VerificationError(str(error)) from None
        if key.key_id != declared_id:
            raise VerificationError(
                f"expected key id {key.key_id.hex()} for {name} and its key, got {hex_id}"
            )
        return key

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's signature of `message` (one BLS Verify, ~0.3 s)."""
        return _verify(self.public, message, signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenKey:
    """A verifier key with its proof of possession, checked when made: only such keys are trusted.

    Aggregating signatures is safe only if every public key comes from a party who knows its secret
    key; otherwise a party can choose pk = g^x - (the others' keys) and sign for all of them alone.
    Text form: `<vkey> <base64(proof)>`.
    """

    key: VerifierKey
    proof: bytes

    def __post_init__(self) -> None:
        if not _proves_possession(self.key.public, self.proof):
            raise VerificationError(
                f"expected a proof of possession of the key of {self.key.name}, got one that "
                "does not verify"
            )

    def __str__(self) -> str:
        return f"{self.key} {base64.b64encode(self.proof).decode()}"

    @classmethod
    def parse(cls, text: str) -> ProvenKey:
        vkey, space, proof = text.partition(" ")
        if not space:
            raise VerificationError(f"expected <vkey> <base64 proof of possession>, got {text!r}")
        key = VerifierKey.parse(vkey)
        return cls(key=key, proof=strict_base64(proof, f"proof of possession of {key.name}"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A named BLS12-381 secret key: the scalar, never shown in its repr."""

    name: str
    secret: int = field(repr=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if isinstance(self.secret, bool) or not 0 < self.secret < curve_order:
            raise ValueError(f"expected a secret scalar of {self.name} in 1..r-1, got another")

    @classmethod
    def generate(cls, name: str, *, seed: bytes | None = None) -> SigningKey:
        """A new key: KeyGen of the ciphersuite, from `seed` (32 bytes or more) or 32 random bytes.

        The same seed gives the same key: seeds are as secret as the keys they make.
        """
        if seed is None:
            seed = secrets.token_bytes(MINIMUM_SEED_SIZE)
        if len(seed) < MINIMUM_SEED_SIZE:
            raise ValueError(
                f"expected a seed of {MINIMUM_SEED_SIZE} bytes or more, got {len(seed)}"
            )
        return cls(name=name, secret=_key_gen(seed))

    @property
    def public(self) -> VerifierKey:
        return VerifierKey(name=self.name, public=_public_of(self.secret))

    def sign(self, message: bytes) -> bytes:
        """The 96-byte BLS signature of `message` (~0.1 s); deterministic."""
        return _sign(self.secret, message)

    def prove_possession(self) -> ProvenKey:
        """The public key with its proof of possession, as the party hands it to the others."""
        return ProvenKey(key=self.public, proof=_prove_possession(self.secret))

    def to_file_text(self) -> str:
        """The secret key file: JSON with the format, name, algorithm, secret (hex) and vkey."""
        document = {
            "format": KEY_FILE_FORMAT,
            "name": self.name,
            "algorithm": ALGORITHM,
            "secret": self.secret.to_bytes(SECRET_SIZE, "big").hex(),
            "public": str(self.public),
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_file_text(cls, text: str) -> SigningKey:
        """A key file as `to_file_text` writes it; its public key must be the secret's own."""
        try:
            document = json.loads(text)
        except ValueError as error:
            raise VerificationError(f"expected a JSON key file, got {error}") from None
        if not isinstance(document, dict) or sorted(document) != sorted(_KEY_FILE_FIELDS):
            got = sorted(document) if isinstance(document, dict) else type(document).__name__
            raise VerificationError(f"expected the fields {list(_KEY_FILE_FIELDS)}, got {got}")
        for name, expected in (("format", KEY_FILE_FORMAT), ("algorithm", ALGORITHM)):
            if document[name] != expected:
                raise VerificationError(f"expected {name} {expected!r}, got {document[name]!r}")
        secret = document["secret"]
        if not (isinstance(secret, str) and len(secret) == 2 * SECRET_SIZE):
            raise VerificationError(f"expected a secret of {2 * SECRET_SIZE} hex digits")
        scalar = int.from_bytes(_strict_hex(secret, "secret"), "big")
        try:
            key = cls(name=document["name"], secret=scalar)
        except (TypeError, ValueError) as error:
            raise VerificationError(str(error)) from None
        if document["public"] != str(key.public):
            raise VerificationError(
                f"expected public key {key.public} of this secret, got {document['public']!r}"
            )
        return key


def aggregate_verifies(
    keys: Sequence[VerifierKey], message: bytes, signatures: Sequence[bytes]
) -> bool:
    """Whether the sum of `signatures` is a signature of `message` by the sum of `keys`: one
    FastAggregateVerify (~0.3 s however many keys). Sound only for keys of `ProvenKey`s."""
    if not keys or len(keys) != len(signatures):
        return False
    if not all(is_signature_point(signature) for signature in signatures):
        return False
    return _fast_aggregate_verify([key.public for key in keys], message, signatures)


def is_signature_point(signature: bytes) -> bool:
    """Whether `signature` encodes a point of the G2 subgroup other than infinity (~20 ms).

    Almost every corrupted signature fails here, so it is named before any pairing is paid for.
    """
    return len(signature) == SIGNATURE_SIZE and _is_subgroup_point(signature)


def strict_base64(text: str, what: str) -> bytes:
    """RFC 4648 §4 base64 with padding, in its one canonical spelling: no text change is lost."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or base64.b64encode(data).decode() != text:
        raise VerificationError(f"expected canonical base64 for the {what}, got {text!r}")
    return data


def _strict_hex(text: str, what: str) -> bytes:
    if len(text) % 2 or any(character not in "0123456789abcdef" for character in text):
        raise VerificationError(f"expected lowercase hex for the {what}, got {text!r}")
    return bytes.fromhex(text)


# py_ecc's ciphersuite, wrapped: its arguments are typed with eth_typing's NewTypes of bytes.


def _key_gen(seed: bytes) -> int:
    return _Bls.KeyGen(seed)


def _public_of(secret: int) -> bytes:
    return bytes(_Bls.SkToPk(secret))


def _sign(secret: int, message: bytes) -> bytes:
    return bytes(_Bls.Sign(secret, message))


def _prove_possession(secret: int) -> bytes:
    return bytes(_Bls.PopProve(secret))


def _verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_SIZE:
        return False
    return bool(_Bls.Verify(public, message, signature))  # type: ignore[arg-type]


def _fast_aggregate_verify(
    publics: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
) -> bool:
    aggregate = _Bls.Aggregate(signatures)  # type: ignore[arg-type]
    return bool(_Bls.FastAggregateVerify(publics, message, aggregate))  # type: ignore[arg-type]


def _is_subgroup_point(signature: bytes) -> bool:
    try:
        point = signature_to_G2(signature)  # type: ignore[arg-type]
    except Exception:  # bad flags or x off the curve: eth_utils' ValidationError or ValueError
        return False
    return not is_inf(point) and bool(subgroup_check(point))


@functools.lru_cache(maxsize=1024)
def _is_valid_public_key(public: bytes) -> bool:
    # KeyValidate (draft-irtf-cfrg-bls §2.5): 48 bytes, on the curve, in the subgroup, not the
    # identity. Memoized: every VerifierKey made checks its key.
    if len(public) != PUBLIC_KEY_SIZE:
        return False
    return bool(_Bls.KeyValidate(public))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=1024)
def _proves_possession(public: bytes, proof: bytes) -> bool:
    # Memoized: a proof costs a pairing check (~0.3 s), and a policy is rebuilt with the same keys.
    if len(proof) != SIGNATURE_SIZE:
        return False
    return bool(_Bls.PopVerify(public, proof))  # type: ignore[arg-type]
