"""Generate the target/option reference of docs/pants.md from `./pants help-all` (the same text `pants help` prints).

    python -m tests.integration.pants.gen_pants_docs          # rewrite the generated section of docs/pants.md
    python -m tests.integration.pants.gen_pants_docs --check  # exit 1 if it is out of date (test_docs_in_sync.py)

Only the part between the BEGIN/END markers is generated; the rest of docs/pants.md is hand-written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: python -m tests.integration.pants.gen_pants_docs -->"
END = "<!-- END GENERATED -->"
PROVIDER = "oci2bin"
ORDER = ("oci_binary", "oci_vm_binary", "oci_image", "oci_image_pull", "oci_layout", "oci_archive",
         "static_c_binary", "pypi_sdist_files")  # fmt: skip
SCOPES = ("oci2bin",)  # [zig] is a standard Pants Python tool: `./pants help zig`
COMMON = {"tags", "description"}  # every target has these


def repo_root() -> Path:
    return Path(os.environ.get("OCI2BIN_REPO_ROOT") or Path(__file__).resolve().parents[3])


def help_all(root: Path, *pants_args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_") or k == "PANTS_CA_CERTS_PATH"}
    out = subprocess.run([str(root / "pants"), "--no-pantsd", *pants_args, "help-all"], cwd=root, env=env,
                         check=True, capture_output=True, text=True, timeout=600).stdout  # fmt: skip
    return json.loads(out)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(info: dict) -> str:
    targets = {k: v for k, v in info["name_to_target_type_info"].items() if v.get("provider") == PROVIDER}
    names = [n for n in ORDER if n in targets] + sorted(set(targets) - set(ORDER))
    out = [BEGIN, "", "## Reference (generated from `./pants help`)", ""]
    out.append(
        "Every target also takes the common `tags` and `description` fields. `./pants help <target>` prints "
        "the same text."
    )
    for name in names:
        t = targets[name]
        out += [
            "",
            f"### `{name}`",
            "",
            t["description"].strip(),
            "",
            "| field | type | default | |",
            "|---|---|---|---|",
        ]
        for f in t["fields"]:
            if f["alias"] in COMMON:
                continue
            default = "**required**" if f["required"] else f"`{f['default']}`"
            out.append(
                f"| `{f['alias']}` | `{_cell(f['type_hint'])}` | {default} | {_cell(f['description'])} |"
            )
    for scope in SCOPES:
        help_info = info["scope_to_help_info"].get(scope)
        if not help_info:
            continue
        out += ["", f"### Options `[{scope}]`", "", _cell(help_info.get("description", "")), "",
                "| option | default | |", "|---|---|---|"]  # fmt: skip
        for opt in help_info["basic"] + help_info["advanced"]:
            default = (
                json.dumps(opt["default"], sort_keys=True)
                if not isinstance(opt["default"], str)
                else opt["default"]
            )
            out.append(
                f"| `{opt['config_key']}` (`{opt['env_var']}`) | `{_cell(default)}` | {_cell(opt['help'])} |"
            )
    out += ["", END]
    return "\n".join(out)


def update(doc: str, generated: str) -> str:
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + generated + tail
    return doc.rstrip("\n") + "\n\n" + generated + "\n"


def main(argv: list[str]) -> int:
    root = repo_root()
    path = root / "docs" / "pants.md"
    doc = path.read_text() if path.exists() else ""
    new = update(doc, render(help_all(root)))
    if "--check" in argv:
        if new != doc:
            print(
                f"{path} is out of date: run python -m tests.integration.pants.gen_pants_docs",
                file=sys.stderr,
            )
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
