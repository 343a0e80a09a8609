"""The device filter of cgroup v2: a tiny eBPF program, written here instruction by instruction.

cgroup v1 has a ``devices`` controller: write ``c 1:3 rwm`` to ``devices.allow`` and a
process in the cgroup may create (m), read (r) and write (w) /dev/null and nothing else.
cgroup v2 has no such files. Instead, the kernel runs a BPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, every time a process in it opens or
mknods a device node; the program answers 1 (allow) or 0 (deny, EPERM). That is how Docker,
runc and crun keep a container with CAP_MKNOD from making /dev/sda and reading the host's disk.

The program sees a ``struct bpf_cgroup_dev_ctx`` in register r1::

    u32 access_type   (access << 16) | type    type: 1 block, 2 char; access: 1 mknod, 2 read, 4 write
    u32 major
    u32 minor

and, for each rule of ``DEVICE_RULES``, we emit a block of instructions that jumps to the
next block unless the type, major and minor match and every requested access is allowed::

    r2 = *(u32 *)(r1 + 0)        access_type
    r3 = r2 & 0xffff             type          r4 = r2 >> 16    access
    r5 = *(u32 *)(r1 + 4)        major         r6 = *(u32 *)(r1 + 8)  minor
    if r3 != 2 goto next         (for "c 1:3 rwm")
    if r5 != 1 goto next
    if r6 != 3 goto next
    r7 = r4 & ~7                 (access not in "rwm")
    if r7 != 0 goto next
    r0 = 1; exit                 allow
  next: ...
    r0 = 0; exit                 nothing matched: deny

bpf(BPF_PROG_LOAD) hands it to the kernel's verifier (which proves it terminates and reads
only its context), bpf(BPF_PROG_ATTACH) attaches it to the container's cgroup directory. It
goes away with the cgroup. See it: ``bpftool cgroup tree /sys/fs/cgroup/minidocker``.
"""

from __future__ import annotations

import ctypes
import os
import struct

from minidocker.linux.events import emit

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}.get(os.uname().machine, 321)
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 2  # other programs (a parent's) may be attached too; all must allow

DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS = {"m": 1, "r": 2, "w": 4}

# opcodes (class | size/op | source) from <linux/bpf_common.h> and <linux/bpf.h>
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
ALU_MOV_X = 0xBC  # dst = (u32) src
ALU_AND_K = 0x54  # dst &= imm          (32-bit)
ALU_RSH_K = 0x74  # dst >>= imm         (32-bit)
ALU64_MOV_K = 0xB7  # dst = imm
JMP_JNE_K = 0x55  # if dst != imm: pc += off
JMP_EXIT = 0x95


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: opcode, registers (4 bits each), a 16-bit offset, a 32-bit immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def parse_rule(rule: str) -> tuple[int | None, int | None, int | None, int]:
    """``"c 1:3 rwm"`` -> (type, major, minor, access bits); None is a wildcard (``a``, ``*``)."""
    kind, numbers, access = rule.split()
    major, minor = numbers.split(":")
    dev_type = {"a": None, "b": DEV_BLOCK, "c": DEV_CHAR}[kind]
    return (
        dev_type,
        None if major == "*" else int(major),
        None if minor == "*" else int(minor),
        sum(ACCESS[a] for a in access),
    )


def device_program(rules: tuple[str, ...] | list[str]) -> bytes:
    """The eBPF program (bytes of bpf_insn) allowing exactly ``rules``, in v1's rule syntax."""
    prog = [
        insn(LDX_MEM_W, dst=2, src=1, off=0),
        insn(ALU_MOV_X, dst=3, src=2),
        insn(ALU_AND_K, dst=3, imm=0xFFFF),
        insn(ALU_MOV_X, dst=4, src=2),
        insn(ALU_RSH_K, dst=4, imm=16),
        insn(LDX_MEM_W, dst=5, src=1, off=4),
        insn(LDX_MEM_W, dst=6, src=1, off=8),
    ]
    for rule in rules:
        dev_type, major, minor, access = parse_rule(rule)
        fields = [(3, dev_type), (5, major), (6, minor)]
        checks = [(reg, value) for reg, value in fields if value is not None]  # None: any value
        length = len(checks) + 5  # the checks, the access test (3), allow (2)
        block: list[bytes] = []
        for reg, value in checks:
            block.append(insn(JMP_JNE_K, dst=reg, off=length - len(block) - 1, imm=value))
        block.append(insn(ALU_MOV_X, dst=7, src=4))
        block.append(insn(ALU_AND_K, dst=7, imm=~access & 0xFFFF))
        block.append(insn(JMP_JNE_K, dst=7, off=length - len(block) - 1, imm=0))
        block += [insn(ALU64_MOV_K, dst=0, imm=1), insn(JMP_EXIT)]
        prog += block
    prog += [insn(ALU64_MOV_K, dst=0, imm=0), insn(JMP_EXIT)]
    return b"".join(prog)


_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    ret = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({'BPF_PROG_LOAD' if cmd == BPF_PROG_LOAD else 'BPF_PROG_ATTACH'}): {os.strerror(err)}")
    return ret


def load_device_program(program: bytes) -> int:
    """bpf(BPF_PROG_LOAD): the verifier checks the program; returns its file descriptor."""
    code = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, the BPF_PROG_LOAD members, zeroed
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        ctypes.addressof(code),
        ctypes.addressof(license),
        1,
        len(log),
        ctypes.addressof(log),
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}; verifier: {log.value.decode(errors='replace')[-300:]}") from None


def attach_device_filter(cgroup_dir: str, rules: tuple[str, ...] | list[str]) -> None:
    """Load the program for ``rules`` and attach it to ``cgroup_dir`` (a cgroup v2 directory)."""
    prog_fd = load_device_program(device_program(rules))
    cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(32)  # target_fd, attach_bpf_fd, attach_type, attach_flags
        struct.pack_into("<IIII", attr, 0, cg_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        _bpf(BPF_PROG_ATTACH, attr)
    finally:
        os.close(cg_fd)
        os.close(prog_fd)  # the attachment holds the program now
    emit("bpf_device_filter", path=cgroup_dir, rules=len(rules))
