"""Checkpoints as C2SP signed notes, co-signed with BLS12-381 and verified by a k-of-n policy.

BLS is slow in pure Python (sign ~0.1 s, a pairing check ~0.3 s), so keys, proofs of possession
and signed notes are made once per session, and tests that must fail reach the cheap checks first
(quorum, origin, point decoding) wherever the clause allows. The file runs in about 15 s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
from py_ecc.optimized_bls12_381.optimized_curve import G1, add, multiply, neg

from ledger import merkle
from ledger.checkpoint import (
    EMPTY_ROOT,
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointSigner,
    NoteSignature,
    Policy,
    SignedNote,
    sign_note,
    verify_checkpoint,
)
from ledger.errors import VerificationError
from ledger.keys import (
    CIPHERSUITE,
    ProvenKey,
    SigningKey,
    VerifierKey,
    aggregate_verifies,
    key_id,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "checkpoints.md"
ORIGIN = "settle.example/ledger"
ENTRIES = tuple(hashlib.sha256(f"example entry {i}".encode()).digest() for i in range(6))


def example_key(name: str) -> SigningKey:
    """The keys of docs/checkpoints.md: public seeds, so for examples and tests only."""
    seed = hashlib.sha256(b"settle example key: " + name.encode()).digest()
    return SigningKey.generate(name, seed=seed)


def checkpoint_of(size: int, entries: tuple[bytes, ...] = ENTRIES) -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=size, root=merkle.root_of(entries[:size]))


def consistency_proof(old_size: int, new_size: int) -> tuple[bytes, ...]:
    return merkle.consistency_proof(old_size, new_size, _NodesInMemory(ENTRIES))


class _NodesInMemory:
    """ledger.merkle's NodeReader over a tree built in memory, as the store would serve it."""

    def __init__(self, entries: tuple[bytes, ...]) -> None:
        frontier, self._nodes = merkle.Frontier.empty(), {}
        for entry in entries:
            frontier, completed = frontier.append(merkle.leaf_hash(entry))
            self._nodes.update({(level, index): node for level, index, node in completed})

    def nodes(self, keys: Collection[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        return {key: self._nodes[key] for key in keys if key in self._nodes}


def without(note: SignedNote, *names: str) -> SignedNote:
    return replace(note, signatures=tuple(s for s in note.signatures if s.name not in names))


def with_line(note: SignedNote, line: NoteSignature) -> SignedNote:
    return replace(note, signatures=(*note.signatures, line))


def line_of(note: SignedNote, name: str) -> NoteSignature:
    return next(s for s in note.signatures if s.name == name)


def replaced(note: SignedNote, line: NoteSignature) -> SignedNote:
    return replace(
        note, signatures=tuple(line if s.name == line.name else s for s in note.signatures)
    )


# --- Session fixtures: 3 proofs of possession and 5 signatures in all -----------------------------


@pytest.fixture(scope="session")
def service() -> SigningKey:
    return example_key(ORIGIN)  # C2SP tlog-checkpoint: the log's key name SHOULD be the origin


@pytest.fixture(scope="session")
def payer() -> SigningKey:
    return example_key("payer.example")


@pytest.fixture(scope="session")
def provider() -> SigningKey:
    return example_key("provider.example")


@pytest.fixture(scope="session")
def proven(service, payer, provider) -> dict[str, ProvenKey]:
    return {key.name: key.prove_possession() for key in (service, payer, provider)}


@pytest.fixture(scope="session")
def two_of_three(proven) -> Policy:
    """The ledger's policy: two of the three parties, one of them the service."""
    return Policy(
        origin=ORIGIN, trusted=frozenset(proven.values()), threshold=2, required=frozenset({ORIGIN})
    )


@pytest.fixture(scope="session")
def service_alone(proven) -> Policy:
    """A policy one signature satisfies, so a failed check costs one pairing check, not three."""
    return Policy(
        origin=ORIGIN, trusted=frozenset(proven.values()), threshold=1, required=frozenset({ORIGIN})
    )


@pytest.fixture(scope="session")
def note_at_3(service, payer, provider) -> SignedNote:
    """The checkpoint of 3 entries signed by all three parties: the example of the docs."""
    note = sign_note(checkpoint_of(3), service)
    return sign_note(sign_note(note, payer), provider)


@pytest.fixture(scope="session")
def note_at_5(service, payer) -> SignedNote:
    return sign_note(sign_note(checkpoint_of(5), service), payer)


# --- The text of checkpoints, notes and keys ------------------------------------------------------


def test_a_checkpoint_body_is_the_three_lines_of_c2sp_tlog_checkpoint():
    checkpoint = Checkpoint(origin="example.com/behind-the-sofa", size=20852163, root=b"\x0a" * 32)

    assert checkpoint.body() == (
        "example.com/behind-the-sofa\n20852163\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n"
    )
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        "o\n3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=",  # no final newline
        "o\n03\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",  # leading zero
        "o\n+3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",
        "o\n 3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",
        "o\n٣\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",  # a digit, but not ASCII
        "o\n18446744073709551616\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",  # 2**64
        "o\n3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCg==\n",  # 31 bytes
        "o\n3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgp=\n",  # non-canonical base64
        "o\n3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\nextension\n",  # not Settle's
        "\n3\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",  # no origin
        "o\n0\nCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=\n",  # empty tree, other root
    ],
)
def test_a_body_that_is_not_exactly_a_checkpoint_is_refused(body):
    with pytest.raises(VerificationError, match="expected"):
        Checkpoint.parse(body)


def test_a_signed_note_reads_back_exactly_as_written(note_at_3):
    text = str(note_at_3)

    assert text.startswith(note_at_3.body + "\n\N{EM DASH} settle.example/ledger ")
    assert text.count("\n\N{EM DASH} ") == 3
    assert SignedNote.parse(text) == note_at_3
    assert SignedNote.parse(text.encode()) == note_at_3
    assert str(SignedNote.parse(text)) == text


def test_key_ids_are_computed_as_c2sp_signed_note_recommends_for_the_go_sumdb_vector():
    # C2SP signed-note §Signatures: key ID = SHA-256(key name || 0x0A || signature type ||
    # public key)[:4]; its §Signature types gives Ed25519 the byte 0x01. The vector is the note
    # and vkey of golang.org/x/mod/sumdb/note's tests, which the spec grew out of.
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    go_note = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        "\N{EM DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
        "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    type_and_key = base64.b64decode(vkey.split("+")[2])

    assert key_id("PeterNeumann", type_and_key[:1], type_and_key[1:]) == bytes.fromhex("c74f20a3")
    note = SignedNote.parse(go_note)
    assert note.body.startswith("If you think") and note.body.endswith("problem is.\n")
    [line] = note.signatures
    assert (line.name, line.key_id.hex(), len(line.signature)) == ("PeterNeumann", "c74f20a3", 64)
    assert str(note) == go_note


def test_a_settle_key_id_hashes_the_name_0xff_and_the_ciphersuite_then_the_public_key(service):
    public = service.public
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\xff" + CIPHERSUITE + public.public).digest()

    assert public.key_id == expected[:4]
    assert str(public).startswith(f"{ORIGIN}+{expected[:4].hex()}+/0JMU19TSUdf")  # 0xff "BLS_SIG_"


def test_a_vkey_reads_back_and_must_carry_its_own_key_id(payer):
    text = str(payer.public)
    name, hex_id, key_data = text.split("+", 2)
    wrong_id = f"{int(hex_id, 16) ^ 1:08x}"

    assert VerifierKey.parse(text) == payer.public
    with pytest.raises(VerificationError, match=f"expected key id {hex_id} .*, got {wrong_id}"):
        VerifierKey.parse(f"{name}+{wrong_id}+{key_data}")
    with pytest.raises(VerificationError, match="expected a key of type ff"):
        VerifierKey.parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(VerificationError, match="expected <name>"):
        VerifierKey.parse(f"{name}+{key_data}")


@pytest.mark.parametrize(
    "name", ["", "payer example", "payer+example", "payer\texample", "a\u2003b"]
)
def test_a_key_name_has_no_spaces_and_no_plus(name):
    with pytest.raises(ValueError, match="expected a key name"):
        SigningKey.generate(name, seed=bytes(32))


def test_a_key_file_reads_back_and_hides_nothing_it_needs(service):
    text = service.to_file_text()
    document = json.loads(text)

    assert list(document) == ["format", "name", "algorithm", "secret", "public"]
    assert document["format"] == "settle.key/v1"
    assert document["algorithm"] == "bls12-381-g2-pop"
    assert SigningKey.from_file_text(text) == service
    assert "secret" not in repr(service) and document["secret"] not in repr(service)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d | {"format": "settle.key/v2"}, "expected format 'settle.key/v1'"),
        (lambda d: d | {"algorithm": "ed25519"}, "expected algorithm"),
        (lambda d: d | {"secret": d["secret"].upper()}, "expected lowercase hex"),
        (lambda d: d | {"secret": "00" * 32}, "expected a secret scalar"),
        (lambda d: d | {"name": "provider.example"}, "expected public key provider.example"),
        (lambda d: d | {"extra": 1}, "expected the fields"),
    ],
)
def test_a_key_file_that_does_not_hold_together_is_refused(service, change, message):
    document = change(json.loads(service.to_file_text()))

    with pytest.raises(VerificationError, match=re.escape(message)):
        SigningKey.from_file_text(json.dumps(document))


def test_a_seed_gives_the_same_key_and_a_short_seed_none():
    assert example_key("payer.example") == example_key("payer.example")
    with pytest.raises(ValueError, match="expected a seed of 32 bytes or more, got 16"):
        SigningKey.generate("payer.example", seed=bytes(16))


# --- Strict parsing: nothing in a note's text is read loosely -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "body\n\N{EM DASH} k AAAAAAA=\n",  # no blank line
        "body\n\n",  # no signature
        "body\n\n\N{EM DASH} k AAAAAAA=",  # last line without newline
        "body\n\n- k AAAAAAA=\n",  # hyphen, not em dash
        "body\n\n\N{EM DASH}  k AAAAAAA=\n",  # two spaces
        "body\n\n\N{EM DASH} k AAAAAAA= \n",  # trailing space
        "body\n\n\N{EM DASH} k+1 AAAAAAA=\n",  # '+' in the name
        "body\n\n\N{EM DASH} k AAAAAAA\n",  # missing padding
        "body\n\n\N{EM DASH} k AAAAAAB=\n",  # non-canonical base64
        "body\n\n\N{EM DASH} k AAAA-A==\n",  # not the standard alphabet
        "body\n\n\N{EM DASH} k AAAAAA==\n",  # 4 bytes: a key id and no signature
        "body\r\n\n\N{EM DASH} k AAAAAAA=\n",  # control character
        "body\n\n\N{EM DASH} k AAAAAAA=\n\N{EM DASH} k AAAAAAA=\n",  # the same key twice
        "body\n\n" + "".join(f"\N{EM DASH} k{i} AAAAAAA=\n" for i in range(MAX_SIGNATURES + 1)),
    ],
)
def test_a_malformed_note_is_refused(text):
    with pytest.raises(VerificationError, match="expected"):
        SignedNote.parse(text)


def test_a_note_that_is_not_utf8_is_refused():
    with pytest.raises(VerificationError, match="expected a note in UTF-8"):
        SignedNote.parse(b"body\xff\n\n\xe2\x80\x94 k AAAAAAA=\n")


def test_every_single_byte_change_to_a_note_is_refused_or_read_as_another_note(note_at_3):
    """No byte of the text is skipped, normalized or read loosely: a changed text either fails
    to parse, or parses to a different note that writes back to exactly that text. The
    cryptographic tests below then show a different note does not verify."""
    original = str(note_at_3).encode()
    read_as_another = 0
    for position in range(len(original)):
        changed = bytearray(original)
        changed[position] ^= 0x01
        try:
            note = SignedNote.parse(bytes(changed))
        except VerificationError:
            continue
        read_as_another += 1
        assert note != note_at_3, position
        assert str(note).encode() == bytes(changed), position
    assert 0 < read_as_another < len(original)


# --- The policy: k of n trusted keys, required names, unknown lines ignored -----------------------


def test_two_of_three_signatures_with_the_service_satisfy_the_policy(note_at_3, two_of_three):
    assert verify_checkpoint(without(note_at_3, "provider.example"), two_of_three) == (
        checkpoint_of(3)
    )


def test_all_three_signatures_satisfy_the_policy(note_at_3, two_of_three):
    assert verify_checkpoint(note_at_3, two_of_three) == checkpoint_of(3)


def test_one_signature_of_three_is_not_enough(note_at_3, two_of_three):
    only_service = without(note_at_3, "payer.example", "provider.example")

    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(only_service, two_of_three)
    assert str(raised.value) == (
        "expected 2 of {payer.example, provider.example, settle.example/ledger}, "
        "got 1: settle.example/ledger"
    )


def test_the_payer_and_the_provider_cannot_sign_without_the_service(note_at_3, two_of_three):
    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(without(note_at_3, ORIGIN), two_of_three)
    assert str(raised.value) == (
        "expected the required signature of settle.example/ledger, "
        "got signatures of payer.example, provider.example"
    )


def test_a_signature_from_an_unknown_key_is_ignored(note_at_3, two_of_three):
    stranger = example_key("auditor.example")
    note = without(note_at_3, "provider.example")
    note = sign_note(note, stranger)
    note = with_line(note, NoteSignature(name="x.example", key_id=b"1234", signature=b"junk"))

    assert verify_checkpoint(note, two_of_three) == checkpoint_of(3)


def test_a_trusted_name_with_another_key_id_is_ignored_as_c2sp_requires(
    note_at_3, two_of_three, service
):
    """C2SP signed-note §Signatures: "Verifiers MUST ignore signatures from unknown keys, even if
    they share a name or ID (but not both) with a known key." So it is not counted, and the
    message names it for whoever has to find out why the quorum is short."""
    impostor = SigningKey.generate("payer.example", seed=b"another payer key".ljust(32, b"."))
    note = sign_note(sign_note(checkpoint_of(3), service), impostor)

    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(note, two_of_three)
    assert str(raised.value) == (
        "expected 2 of {payer.example, provider.example, settle.example/ledger}, "
        "got 1: settle.example/ledger; ignored lines of unknown keys: "
        f"payer.example+{impostor.public.key_id.hex()}"
    )


def test_a_checkpoint_of_another_log_is_refused_before_any_signature_is_checked(
    note_at_3, two_of_three
):
    note = replace(note_at_3, body=note_at_3.body.replace(ORIGIN, "settle.example/other", 1))

    with pytest.raises(
        VerificationError,
        match=r"expected a checkpoint of settle\.example/ledger, got one of settle\.example/other",
    ):
        verify_checkpoint(note, two_of_three)


def test_a_policy_is_refused_when_it_could_never_be_met_or_counts_one_key_twice(proven, payer):
    keys = frozenset(proven.values())
    payer_again = replace(payer, name="payer-again.example").prove_possession()

    with pytest.raises(ValueError, match="expected a threshold of 1 to 3"):
        Policy(origin=ORIGIN, trusted=keys, threshold=4)
    with pytest.raises(ValueError, match="expected a threshold of 1 to 3"):
        Policy(origin=ORIGIN, trusted=keys, threshold=0)
    with pytest.raises(ValueError, match="expected required names among the trusted"):
        Policy(origin=ORIGIN, trusted=keys, threshold=2, required=frozenset({"nobody"}))
    with pytest.raises(ValueError, match="expected a different public key for every"):
        Policy(origin=ORIGIN, trusted=keys | {payer_again}, threshold=2)


def test_a_key_is_trusted_only_with_its_proof_of_possession(proven, service, payer):
    """Without the proof, a party could publish pk = x·G1 - pk(service) - pk(payer): the three
    keys then sum to x·G1, and a signature by x alone passes as all three."""
    checkpoint_body = checkpoint_of(3).body().encode()
    x = 0xC0FFEE
    rogue_point = add(
        multiply(G1, x), neg(add(*(pubkey_to_G1(k.public.public) for k in (service, payer))))
    )
    rogue = VerifierKey(name="provider.example", public=G1_to_pubkey(rogue_point))
    forged = SigningKey(name="x", secret=x).sign(checkpoint_body)
    negated = bytes([forged[0] ^ 0x20]) + forged[1:]  # the sign flag: -forged
    parties = [service.public, payer.public, rogue]

    assert aggregate_verifies(parties, checkpoint_body, [forged, forged, negated])
    with pytest.raises(VerificationError, match="expected a proof of possession of the key of"):
        ProvenKey(key=rogue, proof=proven["provider.example"].proof)


# --- Tampering: every change to a signature or the body is caught, and named --------------------


def test_every_single_byte_change_to_a_signature_is_detected(note_at_3, two_of_three):
    """Each of the 100 bytes of the payer's line (key id and signature), changed: a changed key id
    leaves the quorum short; a changed signature is no point of G2, caught before any pairing.
    The other lines go through the same code."""
    note = without(note_at_3, "provider.example")
    line = line_of(note, "payer.example")
    data = line.key_id + line.signature
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        tampered = replace(line, key_id=bytes(changed[:4]), signature=bytes(changed[4:]))

        with pytest.raises(VerificationError, match=r"payer\.example"):
            verify_checkpoint(replaced(note, tampered), two_of_three)


def test_a_signature_negated_is_a_valid_point_and_still_named_when_it_fails(
    note_at_3, two_of_three
):
    note = without(note_at_3, "provider.example")
    payer_line = line_of(note, "payer.example")
    negated = bytes([payer_line.signature[0] ^ 0x20]) + payer_line.signature[1:]

    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(replaced(note, replace(payer_line, signature=negated)), two_of_three)
    assert str(raised.value) == "signature of payer.example does not verify"


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n3\n", "\n2\n"), ("s34RsTZ3", "s34RsTZ4")],
    ids=["size", "root"],
)
def test_a_changed_body_is_detected(note_at_3, service_alone, old, new):
    note = without(note_at_3, "payer.example", "provider.example")
    tampered = replace(note, body=note.body.replace(old, new, 1))
    assert tampered.body != note.body

    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(tampered, service_alone)
    assert str(raised.value) == "signature of settle.example/ledger does not verify"


def test_a_signature_copied_from_another_checkpoint_is_refused(note_at_3, note_at_5, two_of_three):
    copied = replaced(note_at_5, line_of(note_at_3, "payer.example"))

    with pytest.raises(VerificationError) as raised:
        verify_checkpoint(copied, two_of_three)
    assert str(raised.value) == "signature of payer.example does not verify"


# --- The signer: never two checkpoints that are not consistent ------------------------------------


def test_the_signer_signs_a_checkpoint_that_extends_the_last(note_at_3, note_at_5, service):
    signer = CheckpointSigner(key=service, last=checkpoint_of(3))

    note, next_signer = signer.sign_next(
        checkpoint_of(5), consistency_proof(3, 5), merkle.verify_consistency
    )

    assert note == without(note_at_5, "payer.example")
    assert next_signer == CheckpointSigner(key=service, last=checkpoint_of(5))
    assert signer.last == checkpoint_of(3)


def test_a_cosigner_adds_its_line_to_the_note_it_is_given(note_at_5, service, payer):
    signer = CheckpointSigner(key=payer, last=checkpoint_of(3))

    note, _ = signer.sign_next(
        without(note_at_5, "payer.example"), consistency_proof(3, 5), merkle.verify_consistency
    )

    assert note == note_at_5


def test_the_first_checkpoint_needs_no_proof_and_signing_it_again_changes_nothing(
    note_at_3, service
):
    first, signer = CheckpointSigner(key=service).sign_next(
        checkpoint_of(3), (), merkle.verify_consistency
    )
    again, _ = signer.sign_next(first, (), merkle.verify_consistency)

    assert first == again == without(note_at_3, "payer.example", "provider.example")


def test_from_the_empty_tree_any_tree_extends_it(service):
    signer = CheckpointSigner(key=service, last=Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT))

    note, next_signer = signer.sign_next(checkpoint_of(1), (), merkle.verify_consistency)

    assert next_signer.last == checkpoint_of(1)
    assert note.body == checkpoint_of(1).body()


@pytest.mark.parametrize(
    ("proposed", "proof", "message"),
    [
        (checkpoint_of(3), (), "expected a tree size of at least 5, got 3"),
        (
            replace(checkpoint_of(5), root=checkpoint_of(4).root),
            (),
            "expected root " + base64.b64encode(checkpoint_of(5).root).decode() + " at size 5",
        ),
        (replace(checkpoint_of(6), origin="settle.example/other"), (), "expected origin"),
        (
            checkpoint_of(6, (*ENTRIES[:2], b"rewritten", *ENTRIES[3:])),
            merkle.consistency_proof(5, 6, _NodesInMemory(ENTRIES)),
            "expected new root",
        ),
        (checkpoint_of(6), (), "expected 3 proof hashes from size 5 to 6, got 0"),
    ],
    ids=["smaller", "same-size-other-root", "other-origin", "rewritten-history", "no-proof"],
)
def test_the_signer_refuses_a_checkpoint_that_does_not_extend_the_last(
    service, proposed, proof, message
):
    signer = CheckpointSigner(key=service, last=checkpoint_of(5))

    with pytest.raises(VerificationError, match=re.escape(message)) as raised:
        signer.sign_next(proposed, proof, merkle.verify_consistency)
    assert str(raised.value).startswith(
        f"refusing to sign the checkpoint of size {proposed.size} with {ORIGIN} after size 5: "
    )


def test_a_consistency_verifier_that_answers_false_instead_of_raising_is_a_refusal(service):
    signer = CheckpointSigner(key=service, last=checkpoint_of(3))

    with pytest.raises(VerificationError, match="expected the consistency verifier to raise"):
        signer.sign_next(checkpoint_of(5), consistency_proof(3, 5), lambda *_: False)


# --- The documentation's example cannot drift from the code ---------------------------------------


def _fenced(marker: str) -> str:
    """The fenced block that follows `<!-- marker -->` in docs/checkpoints.md."""
    found = re.search(rf"<!-- {marker} -->\n```[a-z]*\n(.*?)```\n", DOC.read_text(), re.DOTALL)
    assert found, f"no block marked {marker} in {DOC.name}"
    return found.group(1)


def test_the_documented_example_verifies_and_is_what_the_code_writes(note_at_3, proven, service):
    documented_keys = frozenset(
        ProvenKey.parse(line) for line in _fenced("example-trusted-keys").splitlines()
    )
    documented_note = SignedNote.parse(_fenced("example-note"))
    policy = Policy(
        origin=ORIGIN, trusted=documented_keys, threshold=2, required=frozenset({ORIGIN})
    )

    assert verify_checkpoint(documented_note, policy) == checkpoint_of(3)
    assert documented_note == note_at_3
    assert documented_keys == frozenset(proven.values())
    assert _fenced("example-key-file") == service.to_file_text()
