"""`oci2bin sign --key PRIVATE.pem --in BIN [--out OUT]` and `oci2bin verify --key PUBLIC.pem --in BIN`.

verify exits 0 (signature OK), 1 (not signed) or 2 (invalid, or it cannot be checked: bad key, not oci2bin).
"""

from __future__ import annotations

import sys

from oci2bin.cli.common import Parser, note
from oci2bin.polyglot import signing


def sign_parser() -> Parser:
    p = Parser(prog="oci2bin sign", description="Sign an oci2bin binary with an ECDSA P-256 key.")
    p.add_argument("--key", required=True, metavar="PRIVATE.pem", help="P-256 private key (PEM)")
    p.add_argument("--in", dest="input", required=True, metavar="BIN", help="the binary to sign")
    p.add_argument("--out", metavar="OUT", help="write the signed binary here (default: sign in place)")
    return p


def verify_parser() -> Parser:
    p = Parser(
        prog="oci2bin verify",
        description="Check an oci2bin binary's signature: exit 0 OK, 1 not signed, 2 invalid.",
    )
    p.add_argument("--key", required=True, metavar="PUBLIC.pem", help="P-256 public key (PEM)")
    p.add_argument("--in", dest="input", required=True, metavar="BIN", help="the binary to check")
    return p


def run_sign(argv: list[str]) -> int:
    args = sign_parser().parse_args(argv)
    block = signing.sign_file(args.key, args.input, args.out)
    note(f"signed {args.out or args.input} (key {block.key_id.hex()[:16]})")
    return 0


class _VerifyUsage(signing.VerifyError):
    pass


def run_verify(argv: list[str]) -> int:
    try:
        args = verify_parser().parse_args(argv)
    except signing.UserError as e:
        raise _VerifyUsage(e.problem, e.hint) from None
    status, reason = signing.verify_file(args.key, args.input)
    if status == signing.OK:
        sys.stdout.write(f"{args.input}: {reason}\n")
    else:
        hint = "sign it with `oci2bin sign`" if status == signing.NOT_SIGNED else "do not run it"
        sys.stderr.write(f"oci2bin: {args.input}: {reason} ({hint})\n")
    return status
