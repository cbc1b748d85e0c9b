"""Checkpoints of the ledger's Merkle tree as C2SP signed notes: their text, co-signing by the
service, the payer and the provider, the k-of-n policy an auditor verifies them by, and a signer
that refuses to sign two checkpoints that are not consistent.

Pure: strings, bytes and `ledger.keys`; no storage, clock or network. Consistency proofs are
checked by the function the caller passes in (`ledger.merkle.verify_consistency`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.errors import VerificationError
from ledger.keys import (
    KEY_ID_SIZE,
    ProvenKey,
    SigningKey,
    VerifierKey,
    aggregate_verifies,
    check_key_name,
    is_signature_point,
    strict_base64,
)

ROOT_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()
MAX_TREE_SIZE = 2**64 - 1
# C2SP signed-note §Format: verifiers SHOULD limit the signatures of a note, and MUST accept 16.
MAX_SIGNATURES = 64
# Key id and signature; "post-quantum signatures can be up to nearly 5kB" (C2SP signed-note).
MAX_SIGNATURE_SIZE = 8192

SIGNATURE_LINE_PREFIX = "\N{EM DASH} "
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")  # ASCII decimal, no leading zeroes (tlog-checkpoint)

ConsistencyVerifier = Callable[[int, int, bytes, bytes, Sequence[bytes]], object]
"""`verify_consistency(old_size, new_size, old_root, new_root, proof)`: raises VerificationError
when the new tree does not extend the old one. Any return value but None also counts as a refusal,
so that a verifier that answers False instead of raising cannot let a fork through."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The head of the ledger's tree: which log (origin), how many entries (size), and its root."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin or any(ord(character) < 0x20 for character in self.origin):
            raise ValueError(f"expected an origin of one non-empty line, got {self.origin!r}")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"expected a tree size in 0..2**64-1, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise ValueError(f"expected a {ROOT_SIZE}-byte root, got {self.root!r}")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise ValueError(
                f"expected the empty tree's root {_base64(EMPTY_ROOT)} at size 0, got "
                f"{_base64(self.root)}"
            )

    def body(self) -> str:
        """The note text of C2SP tlog-checkpoint: origin, size and base64 root, one per line."""
        return f"{self.origin}\n{self.size}\n{_base64(self.root)}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """The checkpoint of a note body; strictly `body()`'s form, so no extension lines."""
        lines = body[:-1].split("\n") if body.endswith("\n") else []
        if len(lines) != 3:
            raise VerificationError(
                "expected a checkpoint body of 3 lines (origin, tree size, root) ending in a "
                f"newline, got {body!r}"
            )
        origin, size_text, root_text = lines
        if not _TREE_SIZE.fullmatch(size_text):
            raise VerificationError(
                f"expected a tree size in decimal without leading zeroes, got {size_text!r}"
            )
        root = strict_base64(root_text, "root")
        try:
            return cls(origin=origin, size=int(size_text), root=root)
        except ValueError as error:
            raise VerificationError(str(error)) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteSignature:
    """One signature line of a note: `— <key name> <base64(key id || signature)>`."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise ValueError(f"expected a {KEY_ID_SIZE}-byte key id, got {len(self.key_id)} bytes")
        if not 0 < len(self.signature) <= MAX_SIGNATURE_SIZE - KEY_ID_SIZE:
            raise ValueError(
                f"expected a signature of 1 to {MAX_SIGNATURE_SIZE - KEY_ID_SIZE} bytes from "
                f"{self.name}, got {len(self.signature)}"
            )

    @property
    def signer(self) -> str:
        """`<name>+<hex key id>`, as a vkey begins: how a line is named in messages."""
        return f"{self.name}+{self.key_id.hex()}"

    def line(self) -> str:
        """The line without its newline."""
        return f"{SIGNATURE_LINE_PREFIX}{self.name} {_base64(self.key_id + self.signature)}"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        fields = line.removeprefix(SIGNATURE_LINE_PREFIX).split(" ")
        if not line.startswith(SIGNATURE_LINE_PREFIX) or len(fields) != 2:
            raise VerificationError(
                f"expected a signature line '— <key name> <base64>', got {_shown(line)}"
            )
        name, encoded = fields
        data = strict_base64(encoded, f"signature of {name}")
        if len(data) <= KEY_ID_SIZE:
            raise VerificationError(
                f"expected a key id and a signature from {name}, got {len(data)} bytes"
            )
        try:
            return cls(name=name, key_id=data[:KEY_ID_SIZE], signature=data[KEY_ID_SIZE:])
        except ValueError as error:
            raise VerificationError(str(error)) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedNote:
    """A C2SP signed note: a body ending in a newline, then one or more signature lines.

    Every signer signs the same bytes, the body, which is what lets their BLS signatures aggregate.
    That is why Settle does not use tlog-cosignature/v1: its message puts each cosigner's own
    timestamp before the body, so no two cosigners would sign the same message.
    """

    body: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_note_characters(self.body)
        if not self.body.endswith("\n"):
            raise ValueError(f"expected a note body ending in a newline, got {_shown(self.body)}")
        if not 0 < len(self.signatures) <= MAX_SIGNATURES:
            raise ValueError(
                f"expected 1 to {MAX_SIGNATURES} signature lines, got {len(self.signatures)}"
            )
        signers = [signature.signer for signature in self.signatures]
        repeated = sorted({signer for signer in signers if signers.count(signer) > 1})
        if repeated:
            raise ValueError(f"expected one signature per key, got more from {', '.join(repeated)}")

    def __str__(self) -> str:
        return self.body + "\n" + "".join(s.line() + "\n" for s in self.signatures)

    @classmethod
    def parse(cls, text: str | bytes) -> SignedNote:
        """A note exactly as `str()` writes it; anything else raises VerificationError."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise VerificationError(f"expected a note in UTF-8, got {error}") from None
        try:
            _check_note_characters(text)
        except ValueError as error:
            raise VerificationError(str(error)) from None
        # "the text is separated from the signatures by the last empty line in the note"
        blank = text.rfind("\n\n")
        if blank < 0:
            raise VerificationError(
                "expected a body ending in a newline, a blank line and signature lines, got no "
                "blank line"
            )
        body, block = text[: blank + 1], text[blank + 2 :]
        if not block.endswith("\n"):
            raise VerificationError(
                f"expected signature lines each ending in a newline, got {_shown(block)}"
            )
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise VerificationError(
                f"expected at most {MAX_SIGNATURES} signature lines, got {len(lines)}"
            )
        signatures = tuple(NoteSignature.parse(line) for line in lines)
        try:
            return cls(body=body, signatures=signatures)
        except ValueError as error:
            raise VerificationError(str(error)) from None


def sign_note(note: Checkpoint | SignedNote, key: SigningKey) -> SignedNote:
    """The note with `key`'s signature of its body added, or put in place of its earlier one.

    BLS signatures are deterministic, so signing twice with one key gives the same note.
    """
    body = note.body() if isinstance(note, Checkpoint) else note.body
    existing = () if isinstance(note, Checkpoint) else note.signatures
    public = key.public
    line = NoteSignature(name=key.name, key_id=public.key_id, signature=key.sign(body.encode()))
    if any(s.signer == line.signer for s in existing):
        signatures = tuple(line if s.signer == line.signer else s for s in existing)
    else:
        signatures = (*existing, line)
    return SignedNote(body=body, signatures=signatures)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Whose signatures make a checkpoint of `origin` trusted: `threshold` of the `trusted` keys,
    among them every name in `required` (typically the service's)."""

    origin: str
    trusted: frozenset[ProvenKey]
    threshold: int
    required: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = [proven.key.name for proven in self.trusted]
        if len(set(names)) != len(names):
            raise ValueError(f"expected one trusted key per name, got {sorted(names)}")
        publics = {proven.key.public for proven in self.trusted}
        if len(publics) != len(names):
            # One secret under two names would count as two signers.
            raise ValueError("expected a different public key for every trusted name")
        if not 1 <= self.threshold <= len(names):
            raise ValueError(
                f"expected a threshold of 1 to {len(names)} trusted keys, got {self.threshold}"
            )
        unknown = sorted(self.required - set(names))
        if unknown:
            raise ValueError(f"expected required names among the trusted, got {unknown}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(proven.key.name for proven in self.trusted))


def verify_checkpoint(note: SignedNote, policy: Policy) -> Checkpoint:
    """The checkpoint of `note` if `policy` trusts it; VerificationError naming what failed.

    C2SP signed-note §Signatures: a line counts only if both its key name and key id are those of
    a trusted key; others, including a trusted name with another key id, are ignored. Every line
    that counts must verify; their signatures are summed and checked with one FastAggregateVerify.
    """
    checkpoint = Checkpoint.parse(note.body)
    if checkpoint.origin != policy.origin:
        raise VerificationError(
            f"expected a checkpoint of {policy.origin}, got one of {checkpoint.origin}"
        )
    keys = {(proven.key.name, proven.key.key_id): proven.key for proven in policy.trusted}
    counted: list[tuple[VerifierKey, bytes]] = []
    ignored: list[str] = []
    for line in note.signatures:
        key = keys.get((line.name, line.key_id))
        if key is None:
            ignored.append(line.signer)
        else:
            counted.append((key, line.signature))
    counted.sort(key=lambda pair: pair[0].name)
    _verify_quorum([key.name for key, _ in counted], policy, ignored)
    for key, signature in counted:
        if not is_signature_point(signature):
            raise VerificationError(
                f"expected a BLS12-381 signature (a point of G2) from {key.name}, got "
                f"{len(signature)} bytes that are not one"
            )
    message = note.body.encode()
    if not aggregate_verifies([k for k, _ in counted], message, [s for _, s in counted]):
        raise VerificationError(_failed_signatures_message(counted, message))
    return checkpoint


def trusted_signers(note: SignedNote, policy: Policy) -> tuple[str, ...]:
    """The names of the note's signature lines from keys the policy trusts (name and key id)."""
    known = {(proven.key.name, proven.key.key_id) for proven in policy.trusted}
    return tuple(sorted({s.name for s in note.signatures if (s.name, s.key_id) in known}))


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSigner:
    """A key and the last checkpoint it signed: it signs a next one only if that one extends it.

    C2SP tlog-checkpoint §Signatures: "A log MUST not sign any checkpoint which is inconsistent
    with any checkpoint it previously signed." The caller keeps `last` (the latest checkpoint it
    signed, from its store) and replaces this signer with the one `sign_next` returns.
    """

    key: SigningKey
    last: Checkpoint | None = None

    def sign_next(
        self,
        checkpoint: Checkpoint | SignedNote,
        consistency_proof: Sequence[bytes],
        verify_consistency: ConsistencyVerifier,
    ) -> tuple[SignedNote, CheckpointSigner]:
        """The note signed by this key (a note already signed by others keeps their lines), and
        the signer that remembers it. Refuses, raising VerificationError, a checkpoint of another
        origin, a smaller one, another root at the same size, or one whose proof does not hold.
        """
        subject = (
            checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.parse(checkpoint.body)
        )
        if self.last is not None:
            try:
                _verify_extends(self.last, subject, consistency_proof, verify_consistency)
            except VerificationError as error:
                raise VerificationError(
                    f"refusing to sign the checkpoint of size {subject.size} with {self.key.name} "
                    f"after size {self.last.size}: {error}"
                ) from error
        return sign_note(checkpoint, self.key), CheckpointSigner(key=self.key, last=subject)


def _verify_extends(
    last: Checkpoint,
    checkpoint: Checkpoint,
    proof: Sequence[bytes],
    verify_consistency: ConsistencyVerifier,
) -> None:
    if checkpoint.origin != last.origin:
        raise VerificationError(f"expected origin {last.origin}, got {checkpoint.origin}")
    if checkpoint.size < last.size:
        raise VerificationError(
            f"expected a tree size of at least {last.size}, got {checkpoint.size}"
        )
    if checkpoint.size == last.size:
        if checkpoint.root != last.root:
            raise VerificationError(
                f"expected root {_base64(last.root)} at size {last.size}, got "
                f"{_base64(checkpoint.root)}"
            )
        return  # the same checkpoint again: signing it twice says nothing new
    if last.size == 0:
        return  # the empty tree is a prefix of every tree (and Checkpoint holds its root)
    answer = verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
    if answer is not None:
        raise VerificationError(
            f"expected the consistency verifier to raise or return None, got {answer!r}"
        )


def _verify_quorum(signers: Sequence[str], policy: Policy, ignored: Sequence[str]) -> None:
    got = ", ".join(signers) or "none"
    unknown = f"; ignored lines of unknown keys: {', '.join(ignored)}" if ignored else ""
    if len(signers) < policy.threshold:
        raise VerificationError(
            f"expected {policy.threshold} of {{{', '.join(policy.names)}}}, got {len(signers)}: "
            f"{got}{unknown}"
        )
    missing = sorted(policy.required - set(signers))
    if missing:
        required = f"{_plural('signature', len(missing))} of {', '.join(missing)}"
        raise VerificationError(
            f"expected the required {required}, got signatures of {got}{unknown}"
        )


def _failed_signatures_message(counted: Sequence[tuple[VerifierKey, bytes]], message: bytes) -> str:
    if len(counted) == 1:
        failed = [counted[0][0].name]  # the aggregate of one signature is that signature
    else:
        failed = [key.name for key, signature in counted if not key.verifies(message, signature)]
    if not failed:  # each verifies alone, yet not their sum: unreachable for valid points
        names = ", ".join(key.name for key, _ in counted)
        return f"aggregate signature of {names} does not verify"
    if len(failed) == 1:
        return f"signature of {failed[0]} does not verify"
    return f"signatures of {', '.join(failed)} do not verify"


def _check_note_characters(text: str) -> None:
    # C2SP signed-note §Format: valid UTF-8, and no control characters but newline.
    for offset, character in enumerate(text):
        if ord(character) < 0x20 and character != "\n":
            raise ValueError(
                f"expected no control character but newline in a note, got "
                f"U+{ord(character):04X} at offset {offset}"
            )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"expected a note in UTF-8, got {error}") from None


def _plural(noun: str, count: int) -> str:
    return noun if count == 1 else noun + "s"


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
