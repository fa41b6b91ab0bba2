"""--vm: the loader boots the image in qemu (docs/loader.md, "VM mode"): command output on stdout/stderr, exit
status, --cpus/--memory as the VM's size, docker-run semantics inside, the oci2vm* name, signals, errors, the
embedded kernel section (docs/format.md), as root and as tester. Boots use `--vm-accel auto` (KVM when usable,
else TCG); boot times are printed (`-s` shows them), not asserted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.rig import images
from tests.integration.vm.conftest import VM_TIMEOUT, Runner, assemble, cli_env, kvm_unusable_reason

AUTO = ["--vm-accel", "auto"]
FOOTER = struct.Struct("<8sIIQQQQQ8s")


def one_error_line(p, *needles: str) -> None:
    assert p.returncode == 125, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oci2bin: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_output_exit_status_and_vm_size(vm_runner):
    cpus = min(2, os.cpu_count() or 1)
    script = "echo hello; echo to-stderr >&2; nproc; grep MemTotal /proc/meminfo; uname -r; exit 7"
    t0 = time.monotonic()
    p = vm_runner.run(*AUTO, "--cpus", str(cpus), "--memory", "512m", "sh", "-c", script, timeout=VM_TIMEOUT)
    print(f"\n[{vm_runner.user}] boot + run + power-off: {time.monotonic() - t0:.2f} s")
    assert p.returncode == 7, (p.stdout, p.stderr)
    assert p.stderr == "to-stderr\n"
    out = p.stdout.splitlines()
    assert out[0] == "hello"
    assert out[1] == str(cpus)
    kb = int(out[2].split()[1])
    assert 400 * 1024 < kb <= 512 * 1024, out[2]  # RAM minus the kernel's reservations
    assert (
        out[3].endswith("-cloud-amd64") and out[3] != os.uname().release
    )  # the guest's kernel, not the host's


def test_echo_hello_and_boot_time(vm_binary, workdir):
    r = Runner(Path(vm_binary), "root", workdir)
    try:
        times = []
        for _ in range(2):  # the first run also fills the rootfs cache
            t0 = time.monotonic()
            p = r.run(*AUTO, "/bin/echo", "hello", timeout=VM_TIMEOUT)
            times.append(time.monotonic() - t0)
            assert (p.returncode, p.stdout, p.stderr) == (0, "hello\n", "")
        d = r.run(*AUTO, "--debug", "/bin/true", timeout=VM_TIMEOUT)
        assert d.returncode == 0
        steps = [
            ln for ln in d.stderr.splitlines() if "VM prepared" in ln or "VM ran" in ln or "initramfs:" in ln
        ]
        print("\nVM /bin/echo hello: " + ", ".join(f"{t:.2f} s" for t in times) + "\n" + "\n".join(steps))
        assert not r.tmp_left()
    finally:
        shutil.rmtree(r.base, ignore_errors=True)


def test_docker_run_semantics_inside(vm_binary, workdir):
    r = Runner(Path(vm_binary), "root", workdir)
    try:
        p = r.run(
            *AUTO,
            "-w",
            "/work/dir",
            "-u",
            "65534:65534",
            "-e",
            "FOO=bar baz",
            "--hostname",
            "vmhost",
            "sh",
            "-c",
            'pwd; id -u; id -g; echo "$FOO"; hostname; ls -a / | grep -c oci2bin; kill -9 $$',
            timeout=VM_TIMEOUT,
        )
        assert p.returncode == 137, (p.stdout, p.stderr)  # 128 + SIGKILL, as docker run
        assert p.stdout.splitlines() == ["/work/dir", "65534", "65534", "bar baz", "vmhost", "0"]
        nf = r.run(*AUTO, "no-such-command", timeout=VM_TIMEOUT)
        assert nf.returncode == 127, (nf.stdout, nf.stderr)
        assert "no-such-command: executable file not found" in nf.stderr
    finally:
        shutil.rmtree(r.base, ignore_errors=True)


def test_oci2vm_name_boots_a_vm(busybox, kernel, workdir):
    """A copy of a plain (container) binary named oci2vm_* runs in a VM; the plain name stays a container."""
    named = workdir / "oci2vm_busybox"
    shutil.copyfile(busybox, named)
    named.chmod(0o755)
    r = Runner(named, "root", workdir)
    try:
        p = r.run(
            "uname", "-r", env={"OCI2BIN_VM_KERNEL": kernel, "OCI2BIN_VM_ACCEL": "auto"}, timeout=VM_TIMEOUT
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip().endswith("-cloud-amd64") and p.stdout.strip() != os.uname().release
        # no kernel embedded, none given: the name alone asks for a VM
        one_error_line(r.run("true"), "no embedded VM kernel", "--kernel")
        r.binary = Path(busybox)
        c = r.run("uname", "-r", timeout=60)
        assert (c.returncode, c.stdout.strip()) == (0, os.uname().release)
        assert not r.tmp_left()
    finally:
        shutil.rmtree(r.base, ignore_errors=True)
        named.unlink()


def test_errors(vm_runner, busybox):
    r = vm_runner
    nobin = r.base / "no-qemu-bin"  # what running as tester needs (setpriv, env), but no qemu
    nobin.mkdir()
    for tool in ("setpriv", "env"):
        (nobin / tool).symlink_to(shutil.which(tool))
    one_error_line(r.run("true", env={"PATH": str(nobin)}), "qemu-system-x86_64 on $PATH")
    one_error_line(r.run("--vmm", "cloud-hypervisor", "true"), "not available in this build")
    one_error_line(r.run("--vmm", "/var/empty/qemu", "true"), "--vmm /var/empty/qemu")
    one_error_line(r.run("-v", "/tmp:/x", "true"), "-v/--volume is not supported with --vm")
    one_error_line(r.run("-it", "sh"), "not supported with --vm")
    # no network device in the guest: port forwards and joins would be dropped silently, so they are refused
    one_error_line(r.run("-p", "8080:80", "true"), "-p/--publish is not supported with --vm")
    one_error_line(r.run("--net", "slirp", "true"), "--net slirp/pasta is not supported with --vm")
    one_error_line(
        r.run("--net", "container:1", "true"), "--net/--ipc container:PID is not supported with --vm"
    )
    one_error_line(r.run("--kernel", "/var/empty/vmlinuz", "true"), "--kernel /var/empty/vmlinuz")
    # busybox's initramfs needs ~100 MiB of guest RAM (the kernel unpacks it into a half-of-RAM tmpfs)
    one_error_line(
        r.run(*AUTO, "--memory", "64m", "true", timeout=60), "--memory 64M is too small", "--memory 1"
    )
    as_user = (
        [] if r.user == "root" else ["setpriv", f"--reuid={r.user}", f"--regid={r.user}", "--init-groups"]
    )
    can_open = subprocess.run([*as_user, "sh", "-c", "test -r /dev/kvm -a -w /dev/kvm"]).returncode == 0
    why = kvm_unusable_reason(can_open)
    if why:  # this machine cannot run KVM guests: the default (kvm) must say so, not hang
        p = r.run("--vm-accel", "kvm", "true", timeout=60)
        one_error_line(p, "/dev/kvm", "--vm-accel tcg")
        assert why in p.stderr
    r.binary = Path(busybox)
    one_error_line(r.run("--vm", "true"), "no embedded VM kernel")


def test_closed_stdout_stops_the_vm_and_cleans_up(vm_binary, workdir):
    """`... | head -n 1`: the loader relays the guest's output, so a closed stdout is its EPIPE (not a SIGPIPE that
    would kill it with the initramfs and kernel copy left in TMPDIR): it stops the VM and exits 141, like a
    command killed by SIGPIPE."""
    r = Runner(Path(vm_binary), "root", workdir)
    try:
        proc = r.popen(*AUTO, "yes", "line", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout.readline() == b"line\n"
            proc.stdout.close()
            assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
            assert proc.stderr.read() == b""
        finally:
            proc.kill()
            proc.wait()
        left = subprocess.run(["pgrep", "-f", str(r.tmp)], capture_output=True, text=True).stdout
        assert not left, f"qemu still running: {left}"
        assert not r.tmp_left()
    finally:
        shutil.rmtree(r.base, ignore_errors=True)


def test_sigterm_stops_the_vm(vm_binary, workdir):
    r = Runner(Path(vm_binary), "root", workdir)
    try:
        proc = r.popen(
            *AUTO, "sh", "-c", "echo up; exec sleep 600", stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            line = proc.stdout.readline()  # the command runs inside the guest
            assert line == b"up\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            proc.kill()
            proc.wait()
        left = subprocess.run(["pgrep", "-f", str(r.tmp)], capture_output=True, text=True).stdout
        assert not left, f"qemu still running: {left}"
        assert not r.tmp_left()
        # SIGKILL of the loader: qemu dies with it (PR_SET_PDEATHSIG) and the next start sweeps the run dir
        proc = r.popen(*AUTO, "sh", "-c", "echo up; exec sleep 600", stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"up\n"
        proc.kill()
        proc.wait()
        for _ in range(100):
            if not subprocess.run(["pgrep", "-f", str(r.tmp)], capture_output=True).stdout:
                break
            time.sleep(0.1)
        else:
            pytest.fail("qemu outlived the SIGKILLed loader")
        assert r.tmp_left()  # the killed run's dir (initramfs, FIFOs)
        p = r.run(*AUTO, "--no-cache", "true", timeout=VM_TIMEOUT)  # also: the private-extraction path
        assert p.returncode == 0, p.stderr
        assert not r.tmp_left()
    finally:
        shutil.rmtree(r.base, ignore_errors=True)


def read_meta(path: str) -> tuple[dict, tuple]:
    with open(path, "rb") as f:
        f.seek(-64, os.SEEK_END)
        footer = FOOTER.unpack(f.read(64))
        f.seek(footer[3])
        return json.loads(f.read(footer[4])), footer


def test_kernel_section_and_signing(loader, vm_binary, kernel, workdir):
    meta, footer = read_meta(vm_binary)
    assert footer[2] & 1 and meta["vm"] is True
    k = meta["vm_kernel"]
    data = Path(kernel).read_bytes()
    assert k["size"] == len(data) and k["offset"] % 512 == 0
    with open(vm_binary, "rb") as f:
        f.seek(k["offset"])
        assert f.read(k["size"]) == data
    assert k["offset"] + k["size"] <= footer[3]  # between the tar's end and the metadata
    # still an ordinary tar: the kernel is invisible past the end-of-archive blocks
    names = subprocess.run(
        ["tar", "-tf", vm_binary], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "manifest.json" in names and not any("vmlinuz" in n for n in names)
    # build-time VM defaults, and a file that is not a kernel is refused with one line
    sized = assemble(
        loader, workdir / "sized.bin", "--kernel", kernel, "--vm-cpus", "2", "--vm-memory", "300"
    )
    m2, f2 = read_meta(sized)
    assert (m2["vm_cpus"], m2["vm_mem_mb"], m2["vm"], f2[2] & 1) == (2, 300, False, 0)
    # `oci2bin update` rebuilds the file and keeps its kernel and VM defaults
    u = subprocess.run(
        [sys.executable, "-m", "oci2bin", "update", "--image", f"oci:{images.build('busybox')}", "-q", sized],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert u.returncode == 0, u.stderr
    m3, _ = read_meta(sized)
    assert (m3["vm_kernel"]["sha256"], m3["vm_cpus"], m3["vm_mem_mb"]) == (m2["vm_kernel"]["sha256"], 2, 300)
    p = subprocess.run(
        [sys.executable, "-m", "oci2bin", "assemble", "--loader", str(loader), "--image", "oci:/nonexistent"]
        + ["--output", str(workdir / "bad.bin"), "--kernel", "/etc/hostname"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert p.returncode != 0 and not (workdir / "bad.bin").exists()
    # signing covers the kernel: sign, verify, and the loader's --verify-key accepts it before booting
    key = ec.generate_private_key(ec.SECP256R1())
    kf, pf = workdir / "vm.key", workdir / "vm.pub"
    kf.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pf.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pf.chmod(0o644)
    signed = workdir / "signed-vm.bin"
    cli = [sys.executable, "-m", "oci2bin"]
    subprocess.run(
        cli + ["sign", "--key", str(kf), "--in", vm_binary, "--out", str(signed)], check=True, env=cli_env()
    )
    v = subprocess.run(
        cli + ["verify", "--key", str(pf), "--in", str(signed)], capture_output=True, text=True, env=cli_env()
    )
    assert v.returncode == 0, v.stdout + v.stderr
    signed.chmod(0o755)
    r = Runner(signed, "root", workdir)
    try:
        p = r.run(*AUTO, "--verify-key", str(pf), "/bin/echo", "signed", timeout=VM_TIMEOUT)
        assert (p.returncode, p.stdout) == (0, "signed\n"), p.stderr
    finally:
        shutil.rmtree(r.base, ignore_errors=True)
