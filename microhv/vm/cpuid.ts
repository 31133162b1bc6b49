// CPUID and MSRs for a guest vCPU. Start from what KVM supports on this host
// and set what a PC guest expects of its own CPU: its APIC ID, the hypervisor
// bit, the topology of the vCPU count we created. (Intel SDM vol. 2A, CPUID.)
import type { CpuidEntry, MsrEntry } from '../kvm/index.js';

const LEAF_FEATURES = 0x1;
const LEAF_EXT_TOPOLOGY = 0xb;
const LEAF_V2_EXT_TOPOLOGY = 0x1f;
const ECX_HYPERVISOR = 1 << 31; // CPUID.1:ECX[31], reserved for hypervisors: tells the guest it is virtualized
const ECX_TSC_DEADLINE = 1 << 24;
const ECX_X2APIC = 1 << 21;

/** CPUID entries for vCPU `index` of `count`, derived from KVM_GET_SUPPORTED_CPUID. */
export function guestCpuid(supported: readonly CpuidEntry[], index: number, count: number): CpuidEntry[] {
  return supported.map((e0) => {
    const e = { ...e0 };
    switch (e.function) {
      case LEAF_FEATURES:
        // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package (one package here).
        e.ebx = ((index & 0xff) << 24) | ((Math.min(count, 255) & 0xff) << 16) | (e.ebx & 0xffff);
        // KVM emulates x2APIC and the TSC-deadline timer in its LAPIC even where the host lacks them.
        e.ecx = (e.ecx | ECX_HYPERVISOR | ECX_X2APIC | ECX_TSC_DEADLINE) >>> 0;
        break;
      case LEAF_EXT_TOPOLOGY:
      case LEAF_V2_EXT_TOPOLOGY:
        // EDX: x2APIC ID of this logical processor, for every sub-leaf.
        e.edx = index;
        break;
      default:
        break;
    }
    return e;
  });
}

// Intel SDM vol. 4, table 2-2.
const MSR_IA32_MISC_ENABLE = 0x1a0;
const MISC_ENABLE_FAST_STRING = 1n;

/** MSRs set on every vCPU before its first run. */
export function bootMsrs(): MsrEntry[] {
  return [{ index: MSR_IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING }];
}

/**
 * MSRs a platform reset puts back to their power-on values. Above all the KVM paravirtual ones
 * (Documentation/virt/kvm/x86/msr.rst): a kvmclock, steal-time, async-PF or PV-EOI area left
 * enabled would have KVM keep writing into RAM that the next kernel owns.
 */
export const RESET_MSRS: readonly number[] = [
  0x11, 0x12, // MSR_KVM_WALL_CLOCK, MSR_KVM_SYSTEM_TIME (old numbers)
  0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04, 0x4b564d05, 0x4b564d06, // *_NEW clock, async PF, steal time, PV EOI, poll control, async PF int
  MSR_IA32_MISC_ENABLE, 0x6e0, 0x277, 0x2ff, // TSC deadline, PAT, MTRR default type
  0x174, 0x175, 0x176, // SYSENTER CS/ESP/EIP
  0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102, // STAR, LSTAR, CSTAR, SFMASK, KERNEL_GS_BASE
];
