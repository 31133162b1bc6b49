// The expected numbers below are the x86-64 kernel ABI, read from the Linux 6.1 uapi headers
// (linux/kvm.h, asm/kvm.h as installed by Debian linux-libc-dev) and confirmed with
// sizeof/offsetof/ioctl macros in a C program. They are typed in here, not derived from abi.ts.
import { describe, expect, it } from 'vitest';
import type { Field, Layout } from '../sys/layout.js';
import {
  KVM_CAP, KVM_CPUID2, KVM_CPUID_ENTRY2, KVM_DTABLE, KVM_ENABLE_CAP, KVM_EXIT, KVM_IOCTL, KVM_IOEVENTFD, KVM_IRQFD,
  KVM_IRQ_ROUTING, KVM_IRQ_ROUTING_ENTRY, KVM_LAPIC_STATE, KVM_MP_STATE, KVM_VCPU_EVENTS, KVM_MSI, KVM_MSRS, KVM_MSR_ENTRY, KVM_REGS, KVM_RUN,
  KVM_SEGMENT, KVM_SIGNAL_MASK, KVM_SREGS, KVM_USERSPACE_MEMORY_REGION,
} from './abi.js';

/** Absolute offset of a dotted path through nested fields. */
function offsetOf(layout: Layout, path: string): number {
  let at = 0;
  let cur: Layout | undefined = layout;
  for (const name of path.split('.')) {
    const f: Field | undefined = cur?.fields[name];
    if (f === undefined) throw new Error(`${layout.name} has no ${path}`);
    at += f.offset;
    cur = f.kind === 'struct' ? f.layout : undefined;
  }
  return at;
}

describe('KVM ABI struct sizes', () => {
  it.each([
    [KVM_REGS, 144], [KVM_SEGMENT, 24], [KVM_DTABLE, 16], [KVM_SREGS, 312], [KVM_USERSPACE_MEMORY_REGION, 32],
    [KVM_RUN, 2352], [KVM_IRQFD, 32], [KVM_IOEVENTFD, 64], [KVM_MSI, 32], [KVM_IRQ_ROUTING, 8],
    [KVM_IRQ_ROUTING_ENTRY, 48], [KVM_ENABLE_CAP, 104], [KVM_LAPIC_STATE, 1024], [KVM_CPUID2, 8],
    [KVM_CPUID_ENTRY2, 40], [KVM_MSRS, 8], [KVM_MSR_ENTRY, 16], [KVM_SIGNAL_MASK, 4], [KVM_MP_STATE, 4], [KVM_VCPU_EVENTS, 64],
  ] as Array<[Layout, number]>)('declares_%s_with_the_kernel_size', (layout, size) => {
    // Assert
    expect(layout.size).toBe(size);
  });
});

describe('KVM ABI field offsets', () => {
  it.each([
    [KVM_REGS, 'rsp', 48], [KVM_VCPU_EVENTS, 'nmi_injected', 12], [KVM_VCPU_EVENTS, 'sipi_vector', 16], [KVM_VCPU_EVENTS, 'flags', 20], [KVM_REGS, 'rip', 128], [KVM_REGS, 'rflags', 136],
    [KVM_SEGMENT, 'limit', 8], [KVM_SEGMENT, 'selector', 12], [KVM_SEGMENT, 'type', 14], [KVM_SEGMENT, 'present', 15],
    [KVM_SEGMENT, 'dpl', 16], [KVM_SEGMENT, 'db', 17], [KVM_SEGMENT, 's', 18], [KVM_SEGMENT, 'l', 19],
    [KVM_SEGMENT, 'g', 20], [KVM_SEGMENT, 'avl', 21], [KVM_SEGMENT, 'unusable', 22], [KVM_DTABLE, 'limit', 8],
    [KVM_SREGS, 'ds', 24], [KVM_SREGS, 'ss', 120], [KVM_SREGS, 'tr', 144], [KVM_SREGS, 'ldt', 168],
    [KVM_SREGS, 'gdt', 192], [KVM_SREGS, 'idt.limit', 216], [KVM_SREGS, 'cr0', 224], [KVM_SREGS, 'cr3', 240],
    [KVM_SREGS, 'cr4', 248], [KVM_SREGS, 'cr8', 256], [KVM_SREGS, 'efer', 264], [KVM_SREGS, 'apic_base', 272],
    [KVM_SREGS, 'interrupt_bitmap', 280], [KVM_SREGS, 'tr.selector', 156],
    [KVM_USERSPACE_MEMORY_REGION, 'flags', 4], [KVM_USERSPACE_MEMORY_REGION, 'guest_phys_addr', 8],
    [KVM_USERSPACE_MEMORY_REGION, 'memory_size', 16], [KVM_USERSPACE_MEMORY_REGION, 'userspace_addr', 24],
    [KVM_RUN, 'request_interrupt_window', 0], [KVM_RUN, 'immediate_exit', 1], [KVM_RUN, 'exit_reason', 8],
    [KVM_RUN, 'ready_for_interrupt_injection', 12], [KVM_RUN, 'if_flag', 13], [KVM_RUN, 'flags', 14],
    [KVM_RUN, 'cr8', 16], [KVM_RUN, 'apic_base', 24], [KVM_RUN, 'io', 32], [KVM_RUN, 'io.size', 33],
    [KVM_RUN, 'io.port', 34], [KVM_RUN, 'io.count', 36], [KVM_RUN, 'io.data_offset', 40],
    [KVM_RUN, 'mmio.phys_addr', 32], [KVM_RUN, 'mmio.data', 40], [KVM_RUN, 'mmio.len', 48], [KVM_RUN, 'mmio.is_write', 52],
    [KVM_RUN, 'eoi.vector', 32], [KVM_RUN, 'system_event.type', 32], [KVM_RUN, 'system_event.ndata', 36],
    [KVM_RUN, 'system_event.data', 40], [KVM_RUN, 'fail_entry.hardware_entry_failure_reason', 32],
    [KVM_RUN, 'fail_entry.cpu', 40], [KVM_RUN, 'internal.suberror', 32], [KVM_RUN, 'internal.ndata', 36],
    [KVM_RUN, 'internal.data', 40], [KVM_RUN, 'hw.hardware_exit_reason', 32], [KVM_RUN, 'kvm_valid_regs', 288],
    [KVM_IRQFD, 'gsi', 4], [KVM_IRQFD, 'flags', 8], [KVM_IRQFD, 'resamplefd', 12],
    [KVM_IOEVENTFD, 'addr', 8], [KVM_IOEVENTFD, 'len', 16], [KVM_IOEVENTFD, 'fd', 20], [KVM_IOEVENTFD, 'flags', 24],
    [KVM_MSI, 'address_hi', 4], [KVM_MSI, 'data', 8], [KVM_MSI, 'flags', 12], [KVM_MSI, 'devid', 16],
    [KVM_IRQ_ROUTING_ENTRY, 'type', 4], [KVM_IRQ_ROUTING_ENTRY, 'flags', 8], [KVM_IRQ_ROUTING_ENTRY, 'irqchip.pin', 20],
    [KVM_IRQ_ROUTING_ENTRY, 'msi.address_lo', 16], [KVM_IRQ_ROUTING_ENTRY, 'msi.address_hi', 20],
    [KVM_IRQ_ROUTING_ENTRY, 'msi.data', 24], [KVM_IRQ_ROUTING_ENTRY, 'msi.devid', 28],
    [KVM_ENABLE_CAP, 'flags', 4], [KVM_ENABLE_CAP, 'arg0', 8], [KVM_ENABLE_CAP, 'arg3', 32],
    [KVM_CPUID_ENTRY2, 'index', 4], [KVM_CPUID_ENTRY2, 'flags', 8], [KVM_CPUID_ENTRY2, 'eax', 12],
    [KVM_CPUID_ENTRY2, 'ebx', 16], [KVM_CPUID_ENTRY2, 'ecx', 20], [KVM_CPUID_ENTRY2, 'edx', 24],
    [KVM_MSR_ENTRY, 'data', 8],
  ] as Array<[Layout, string, number]>)('places_%s_%s_at_the_kernel_offset', (layout, path, offset) => {
    // Assert
    expect(offsetOf(layout, path)).toBe(offset);
  });
});

describe('KVM ioctl numbers', () => {
  it('matches_the_values_of_the_kernel_macros', () => {
    // Assert
    expect(KVM_IOCTL).toEqual({
      GET_API_VERSION: 0xae00, CREATE_VM: 0xae01, CHECK_EXTENSION: 0xae03, GET_VCPU_MMAP_SIZE: 0xae04,
      GET_SUPPORTED_CPUID: 0xc008ae05, CREATE_VCPU: 0xae41, SET_USER_MEMORY_REGION: 0x4020ae46, SET_TSS_ADDR: 0xae47,
      SET_IDENTITY_MAP_ADDR: 0x4008ae48, SET_GSI_ROUTING: 0x4008ae6a, IRQFD: 0x4020ae76, IOEVENTFD: 0x4040ae79,
      RUN: 0xae80, GET_REGS: 0x8090ae81, SET_REGS: 0x4090ae82, GET_SREGS: 0x8138ae83, SET_SREGS: 0x4138ae84,
      GET_MSRS: 0xc008ae88, SET_MSRS: 0x4008ae89, SET_SIGNAL_MASK: 0x4004ae8b, GET_LAPIC: 0x8400ae8e,
      SET_LAPIC: 0x4400ae8f, SET_CPUID2: 0x4008ae90, ENABLE_CAP: 0x4068aea3, SIGNAL_MSI: 0x4020aea5,
      GET_MP_STATE: 0x8004ae98, SET_MP_STATE: 0x4004ae99, SET_VCPU_EVENTS: 0x4040aea0,
    });
  });

  it('uses_the_kernel_capability_and_exit_numbers', () => {
    // Assert
    expect([KVM_CAP.SPLIT_IRQCHIP, KVM_CAP.IRQFD, KVM_CAP.IOEVENTFD, KVM_CAP.SIGNAL_MSI, KVM_CAP.IMMEDIATE_EXIT, KVM_CAP.IRQ_ROUTING])
      .toEqual([121, 32, 36, 77, 136, 25]);
    expect([KVM_EXIT.IO, KVM_EXIT.HLT, KVM_EXIT.MMIO, KVM_EXIT.SHUTDOWN, KVM_EXIT.FAIL_ENTRY, KVM_EXIT.INTR,
      KVM_EXIT.INTERNAL_ERROR, KVM_EXIT.SYSTEM_EVENT, KVM_EXIT.IOAPIC_EOI]).toEqual([2, 5, 6, 8, 9, 10, 17, 24, 26]);
  });
});
