// Post-mortem of a guest triple fault on AMD (tests/block-domain.host.test.ts): KVM's shutdown exit
// re-initializes the vCPU, so its registers are gone by the time microhv hears of it. A kprobe on
// kvm_amd's shutdown_interception reads them first, from the VMCB's save area (AMD APM vol. 2,
// appendix B): CR3, RSP, the IDT, GDT and TSS bases, the event being delivered. The VMCB is found
// through `struct vcpu_svm`'s `vmcb` member, whose offset depends on the kernel build: it is read
// from the module's BTF (/sys/kernel/btf/kvm_amd, split BTF on top of /sys/kernel/btf/vmlinux).
//
//   node dist/tests/support/shutdown-probe.js     prints the kprobe_events line (exit 1: no BTF, no member)
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;
const KIND_STRUCT = 4;
const KIND_UNION = 5;

interface Header { readonly typeStart: number; readonly typeEnd: number; readonly strStart: number; readonly strLen: number }

function header(b: Buffer): Header {
  if (b.length < 24 || b.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not BTF (bad magic)');
  const hdrLen = b.readUInt32LE(4);
  const typeStart = hdrLen + b.readUInt32LE(8);
  const strStart = hdrLen + b.readUInt32LE(16);
  const h = { typeStart, typeEnd: typeStart + b.readUInt32LE(12), strStart, strLen: b.readUInt32LE(20) };
  if (h.typeEnd > b.length || h.strStart + h.strLen > b.length) throw new Error('BTF sections run past the end');
  return h;
}

/** Bytes of kind-specific data after a type's 12-byte common part (the BTF format, by kind). */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case 1: case 14: case 17: return 4; // INT, VAR, DECL_TAG
    case 3: return 12; // ARRAY
    case 4: case 5: return 12 * vlen; // STRUCT, UNION members
    case 6: case 13: return 8 * vlen; // ENUM values, FUNC_PROTO params
    case 15: return 12 * vlen; // DATASEC
    case 19: return 12 * vlen; // ENUM64 values
    default: return 0; // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
  }
}

/**
 * The byte offset of `member` in `struct name`, as described by the split BTF `mod` on top of
 * `base` (a module's string offsets continue after the base's strings); undefined when absent.
 */
export function memberOffset(base: Buffer, mod: Buffer, name: string, member: string): number | undefined {
  const bh = header(base);
  const mh = header(mod);
  const cstr = (b: Buffer, at: number): string => b.toString('latin1', at, b.indexOf(0, at));
  const str = (off: number): string => (off < bh.strLen ? cstr(base, bh.strStart + off) : cstr(mod, mh.strStart + off - bh.strLen));
  for (let p = mh.typeStart; p + 12 <= mh.typeEnd;) {
    const info = mod.readUInt32LE(p + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    if ((kind === KIND_STRUCT || kind === KIND_UNION) && str(mod.readUInt32LE(p)) === name) {
      for (let i = 0; i < vlen; i++) {
        const m = p + 12 + 12 * i;
        if (str(mod.readUInt32LE(m)) !== member) continue;
        const raw = mod.readUInt32LE(m + 8);
        // With kind_flag set the low 24 bits are the bit offset (the high 8 a bitfield size).
        const bits = info >>> 31 ? raw & 0xff_ffff : raw;
        return bits / 8;
      }
      return undefined;
    }
    p += 12 + extraBytes(kind, vlen);
  }
  return undefined;
}

/** VMCB offsets: the control area (exit_int_info, event_inj, nested_cr3), then the save area at 0x400. */
const FIELDS: ReadonlyArray<readonly [name: string, offset: number, type: string]> = [
  ['rip', 0x578, 'x64'], ['rsp', 0x5d8, 'x64'], ['cr3', 0x550, 'x64'], ['cr0', 0x558, 'x64'], ['cr4', 0x548, 'x64'],
  ['efer', 0x4d0, 'x64'], ['cr2', 0x640, 'x64'], ['rflags', 0x570, 'x64'], ['cpl', 0x4cb, 'u8'], ['cs', 0x410, 'u16'],
  ['idtb', 0x488, 'x64'], ['idtl', 0x484, 'u32'], ['gdtb', 0x468, 'x64'], ['trb', 0x498, 'x64'],
  ['exitintinfo', 0x88, 'x64'], ['eventinj', 0xa8, 'x64'], ['ncr3', 0xb0, 'x64'],
];

/** The kprobe_events line that records the VMCB's registers as event kvm_amd/tfregs, given vcpu_svm's `vmcb` offset. */
export function shutdownProbe(vmcbOffset: number): string {
  const vmcb = `+0x${vmcbOffset.toString(16)}(%di)`; // shutdown_interception(struct kvm_vcpu *vcpu): vcpu is the vcpu_svm
  return `p:kvm_amd/tfregs shutdown_interception ${FIELDS.map(([n, off, t]) => `${n}=+0x${off.toString(16)}(${vmcb}):${t}`).join(' ')}`;
}

/** Shell for a test-host command: adds the probe to the tracing at `trace` (tracefs), or says it could not. */
export const enableShutdownProbe = (trace: string): string =>
  `probe=$(node dist/tests/support/shutdown-probe.js) && echo "$probe" >> ${trace}/kprobe_events && echo 1 > ${trace}/events/kvm_amd/tfregs/enable `
  + `|| echo 'shutdown-probe: not set'; `;

/** Shell: prints the probe's registers of the first shutdown in `trace` as `vmcb: rip=...`, and keeps them in `$regs` (for `pt-check --vmcb`). */
export const readShutdownRegs = (trace: string): string =>
  `regs=$(grep -m1 'tfregs:' ${trace}/trace | grep -o 'rip=.*'); echo "vmcb: $regs"; `;

if (process.argv[1]?.endsWith('shutdown-probe.js')) {
  try {
    const off = memberOffset(readFileSync('/sys/kernel/btf/vmlinux'), readFileSync('/sys/kernel/btf/kvm_amd'), 'vcpu_svm', 'vmcb');
    if (off === undefined) throw new Error('struct vcpu_svm has no member vmcb in kvm_amd\'s BTF');
    console.log(shutdownProbe(off));
  } catch (e) {
    console.error(`shutdown-probe: ${(e as Error).message}`);
    process.exit(1);
  }
}
