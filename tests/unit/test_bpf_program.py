"""The device filter's eBPF program, run by a tiny interpreter of the instructions it uses.

The kernel's own verdicts are in tests/integration/test_device_filter.py; here every rule
shape (wildcards, access letters) is checked against many requests, quickly."""

from __future__ import annotations

import itertools
import struct

import pytest

from minidocker.linux import bpf
from minidocker.linux.cgroups import DEVICE_RULES


def run(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack("<BBhi", program[i : i + 8]) for i in range(0, len(program), 8)]
    for _ in range(10000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == bpf.LDX_MEM_W:
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == bpf.ALU_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == bpf.ALU_AND_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == bpf.ALU_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == bpf.ALU64_MOV_K:
            regs[dst] = imm
        elif code == bpf.JMP_JNE_K:
            if regs[dst] != imm & 0xFFFFFFFFFFFFFFFF:
                pc += off
        elif code == bpf.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


def v1_allows(rules, dev_type, major, minor, access) -> bool:
    """What cgroup v1's devices.allow with these rules would answer."""
    for rule in rules:
        t, ma, mi, acc = bpf.parse_rule(rule)
        if t in (None, dev_type) and ma in (None, major) and mi in (None, minor) and access & ~acc == 0:
            return True
    return False


def test_program_matches_the_v1_rules_for_every_request():
    program = bpf.device_program(DEVICE_RULES)
    for dev_type, major, minor, access in itertools.product(
        (bpf.DEV_BLOCK, bpf.DEV_CHAR), (1, 5, 8, 10, 136, 4), (0, 1, 2, 3, 5, 7, 8, 9, 200, 17), (1, 2, 4, 6, 7)
    ):
        want = v1_allows(DEVICE_RULES, dev_type, major, minor, access)
        assert run(program, dev_type, major, minor, access) == int(want), (dev_type, major, minor, access)


@pytest.mark.parametrize(
    "request_, allowed",
    [
        ((bpf.DEV_CHAR, 1, 3, 6), 1),  # read+write /dev/null
        ((bpf.DEV_CHAR, 1, 1, 2), 0),  # read /dev/mem
        ((bpf.DEV_CHAR, 99, 99, 1), 1),  # mknod of any char device ("c *:* m")
        ((bpf.DEV_CHAR, 99, 99, 2), 0),  # ... but not reading it
        ((bpf.DEV_BLOCK, 8, 0, 1), 0),  # mknod of a disk
        ((bpf.DEV_CHAR, 136, 42, 6), 1),  # a pty
    ],
)
def test_known_answers(request_, allowed):
    assert run(bpf.device_program(DEVICE_RULES), *request_) == allowed


def test_an_empty_rule_list_denies_everything():
    assert run(bpf.device_program([]), bpf.DEV_CHAR, 1, 3, 2) == 0
    assert run(bpf.device_program(["a *:* rwm"]), bpf.DEV_BLOCK, 8, 0, 7) == 1
