// Post-mortem of a guest that triple faulted on an instruction fetch (tests/block-domain.host.test.ts):
// from a dump of its RAM (`microhv run --dump-on-reset`, file offset = guest-physical address) and the
// RIP it faulted at, are the kernel's page tables for that address intact in RAM? x86-64 4-level
// paging. Every top-level table a Linux guest has shares one kernel half (entries 256 to 511): the
// check finds that half by its copies, walks the RIP through it, and names any copy that differs in a
// few entries (a stray write into a page table). Intact tables mean the fault did not come from RAM.
//
//   node dist/tests/support/pt-check.js DUMP RIP      (PT_CHECK_GROUPS=1 also lists the largest kernel halves seen)
//   node dist/tests/support/pt-check.js DUMP RIP --cr3 CR3 [ADDR...]
//   node dist/tests/support/pt-check.js DUMP RIP --vmcb 'rip=0x... cr3=0x... idtl=4095 ...'
//
// With the vCPU's CR3 at the fault (the test host's kprobe on KVM's shutdown exit reads it from the
// VMCB), the RIP and each ADDR (the IDT, GDT and TSS bases, the stack: what delivering an event
// touches) are also walked from that table: the one the CPU was actually using. With all the probe's
// registers (--vmcb), the walks end in a verdict on whose fault it was (emulatedCpuFault).
import { readFileSync } from 'node:fs';

const PAGE = 4096;
const PRESENT = 1n;
const LARGE = 0x80n;
const NO_EXECUTE = 1n << 63n;
const ADDR = 0x000f_ffff_ffff_f000n;
const KERNEL_HALF = 256;
/** A copy that differs from the shared kernel half in this many entries or fewer is reported. */
const NEAR = 8;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const entry = (ram: Buffer, table: number, index: number): bigint => ram.readBigUInt64LE(table + index * 8);
/** Whether the table or page an entry points to lies in the dump. */
const inRam = (ram: Buffer, e: bigint): boolean => Number(e & ADDR) + PAGE <= ram.length;

export interface PtCheck {
  readonly lines: string[];
  /** The RIP's mapping is present at every level; undefined when no kernel half was found. */
  readonly intact: boolean | undefined;
  /** From walkFromCr3: the guest-physical address the walk reached, when it did. */
  readonly pa?: number;
}

export function checkKernelMapping(ram: Buffer, rip: bigint): PtCheck {
  const lines: string[] = [];
  const pages = Math.floor(ram.length / PAGE);
  // Candidates: a present entry 511 that points to a table in RAM, and a few more present kernel entries.
  const groups = new Map<string, number[]>();
  for (let p = 0; p < pages; p++) {
    const at = p * PAGE;
    const last = entry(ram, at, 511);
    // A table entry: present and writable (Linux sets the user bit in upper levels too), no large page,
    // no high bits but NX.
    if ((last & 3n) !== 3n || (last & LARGE) !== 0n || ((last >> 52n) & 0x7ffn) !== 0n || !inRam(ram, last)) continue;
    let present = 0;
    for (let i = KERNEL_HALF; i < 512; i++) if ((entry(ram, at, i) & PRESENT) !== 0n && inRam(ram, entry(ram, at, i))) present++;
    // A top-level table's kernel half is not full: the direct map, vmalloc (its 64 entries made at boot),
    // vmemmap, the CPU entry area and the kernel image, about 70 entries in a small guest; a lower-level
    // table of consecutive entries fills all 256.
    if (present < 3 || present > 192) continue;
    const key = ram.toString('hex', at + KERNEL_HALF * 8, at + PAGE);
    const g = groups.get(key);
    if (g) g.push(at); else groups.set(key, [at]);
  }
  const ranked = [...groups.values()].sort((a, b) => b.length - a.length);
  const shared = ranked[0];
  if (shared === undefined) return { lines: ['no top-level page table with a kernel half found'], intact: undefined };
  const ref = shared[0]!;
  lines.push(`kernel half shared by ${shared.length} top-level table(s) (first at ${hex(ref)}); ${ranked.length - 1} other kernel half(s) seen`);
  if (process.env.PT_CHECK_GROUPS) {
    for (const g of ranked.slice(0, 8)) {
      const present = Array.from({ length: 256 }, (_, i) => entry(ram, g[0]!, 256 + i)).map((e, i) => [e, 256 + i] as const).filter(([e]) => (e & PRESENT) !== 0n);
      lines.push(`  ${g.length}x at ${g.slice(0, 3).map(hex).join(',')}: ${present.map(([e, i]) => `${i}=${hex(e)}`).join(' ').slice(0, 300)}`);
    }
  }

  // Copies that differ from the shared half in a few entries: a zeroed or rewritten entry.
  const top = Number((rip >> 39n) & 511n);
  const refEntries = Array.from({ length: 512 - KERNEL_HALF }, (_, i) => entry(ram, ref, KERNEL_HALF + i));
  const probes = refEntries.map((e, i) => [e, i] as const).filter(([e]) => e !== 0n).slice(0, 4);
  const odd: number[] = [];
  for (let p = 0; p < pages && odd.length < 5; p++) {
    const at = p * PAGE;
    if (at === ref || probes.filter(([e, i]) => entry(ram, at, KERNEL_HALF + i) === e).length < Math.min(2, probes.length)) continue;
    const diff: string[] = [];
    for (let i = 0; i < refEntries.length && diff.length <= NEAR; i++) {
      const e = entry(ram, at, KERNEL_HALF + i);
      if (e !== refEntries[i]) diff.push(`entry ${KERNEL_HALF + i} is ${hex(e)}, shared ${hex(refEntries[i]!)}`);
    }
    if (diff.length > 0 && diff.length <= NEAR) {
      lines.push(`table at ${hex(at)} differs from the shared kernel half: ${diff.slice(0, 3).join('; ')}${diff.length > 3 ? ` (+${diff.length - 3})` : ''}`);
      if (entry(ram, at, top) !== entry(ram, ref, top)) odd.push(at);
    }
  }

  // The RIP's walk through the shared half, then through each copy that differs on its way.
  let intact = walk(ram, ref, rip, lines) !== undefined;
  for (const at of odd) {
    lines.push(`the walk through the table at ${hex(at)}, whose entry ${top} differs:`);
    intact = walk(ram, at, rip, lines) !== undefined && intact;
  }
  return { lines, intact };
}

/**
 * Walks `addr` from the top-level table `cr3` points to (its low 12 bits, a PCID, are ignored): an
 * instruction fetch (`fetch`, a page marked NX fails it) or a data access.
 */
export function walkFromCr3(ram: Buffer, cr3: bigint, addr: bigint, fetch: boolean): PtCheck {
  const table = Number(cr3 & ADDR);
  if (table + PAGE > ram.length) return { lines: [`CR3 ${hex(cr3)} points outside RAM`], intact: false };
  const lines: string[] = [];
  const pa = walk(ram, table, addr, lines, fetch);
  return { lines, intact: pa !== undefined, pa };
}

/**
 * Walks `rip` from the top-level table at `table`: the guest-physical address it maps to when it
 * reaches a present page (and, for a fetch, an executable one), else undefined.
 */
function walk(ram: Buffer, table: number, rip: bigint, lines: string[], fetch = true): number | undefined {
  const names = ['PML4', 'PDPT', 'PD', 'PT'];
  let nx = '';
  for (let level = 0; level < 4; level++) {
    const index = Number((rip >> BigInt(39 - 9 * level)) & 511n);
    const e = entry(ram, table, index);
    const where = `${names[level]}[${index}] at ${hex(table + index * 8)} = ${hex(e)}`;
    if ((e & PRESENT) === 0n) {
      let nonzero = 0;
      for (let i = 0; i < 512; i++) if (entry(ram, table, i) !== 0n) nonzero++;
      lines.push(`${hex(rip)}: ${where}: not present (the table has ${nonzero} nonzero entries of 512)`);
      return undefined;
    }
    if (!inRam(ram, e)) {
      lines.push(`${hex(rip)}: ${where}: points outside RAM`);
      return undefined;
    }
    if (fetch && (e & NO_EXECUTE) !== 0n) nx ||= names[level]!;
    if (level === 3 || (level > 0 && (e & LARGE) !== 0n)) {
      const size = level === 3 ? '4 KiB' : level === 2 ? '2 MiB' : '1 GiB';
      if (nx) {
        lines.push(`${hex(rip)}: ${where}: present (${size} page) but not executable (NX in the ${nx} entry)`);
        return undefined;
      }
      lines.push(`${hex(rip)}: ${where}: present (${size} page): the mapping is intact in RAM`);
      const span = 1n << BigInt(39 - 9 * level);
      return Number((e & ADDR & ~(span - 1n)) | (rip & (span - 1n)));
    }
    lines.push(`${hex(rip)}: ${where}`);
    table = Number(e & ADDR);
  }
  return undefined;
}

/** `n` (at most 8) little-endian bytes at `va` through the table at `cr3`, or undefined where one does not map. */
function readVirtual(ram: Buffer, cr3: bigint, va: bigint, n: number): bigint | undefined {
  let v = 0n;
  for (let i = 0; i < n; i++) {
    const pa = walkFromCr3(ram, cr3, va + BigInt(i), false).pa;
    if (pa === undefined || pa >= ram.length) return undefined;
    v |= BigInt(ram[pa]!) << BigInt(8 * i);
  }
  return v;
}

/** Registers as the shutdown probe prints them (`rip=0x... idtl=4095 ...`, shutdown-probe.ts), by name. */
export function parseRegs(text: string): Map<string, bigint> {
  const regs = new Map<string, bigint>();
  for (const m of text.matchAll(/(?:^|\s)([a-z0-9]+)=(0x[0-9a-f]+|\d+)(?=\s|$)/g)) regs.set(m[1]!, BigInt(m[2]!));
  return regs;
}

const CR0_PG = 1n << 31n;
const EFER_LMA = 1n << 10n;
/** The last byte of the IDT's #PF entry (vector 14, 16 bytes an entry in long mode); the #DF entry (8) lies below it. */
const IDT_PF_END = 14n * 16n + 15n;
/** The registers a verdict needs. */
const VERDICT_REGS = ['rip', 'rsp', 'cr3', 'cr0', 'efer', 'cpl', 'idtb', 'idtl', 'gdtb', 'trb'] as const;

export interface Verdict {
  /** The walks through CR3. */
  readonly lines: string[];
  /** The triple fault was the emulated CPU's: the guest's tables in RAM map everything the fault touched. */
  readonly emulated: boolean;
  /** One line, `verdict: ...`. */
  readonly verdict: string;
}

/**
 * Whose triple fault it was, from the vCPU's registers at the shutdown exit (the probe's) and its RAM. A
 * 64-bit guest whose IDT covers #PF and #DF, and through whose CR3 the RIP (a fetch), those two IDT
 * entries, the GDT, the TSS and the stacks their deliveries push onto (an IST stack, the TSS's RSP0
 * from user mode, else below RSP) are all mapped in RAM, gave a real CPU nothing to fault on:
 * delivering the fault and the double fault would have worked. Such a fault is the emulated
 * CPU's own (the test host's TCG with nested paging). Anything else is the guest's, or unknown:
 * a guest that resets on purpose (Linux's reboot=t loads an empty IDT), a table that lost an entry, a
 * CR3 on a page of zeros.
 */
export function emulatedCpuFault(ram: Buffer, regs: ReadonlyMap<string, bigint>): Verdict {
  const missing = VERDICT_REGS.filter((r) => !regs.has(r));
  if (missing.length > 0) return { lines: [], emulated: false, verdict: `verdict: none: the registers lack ${missing.join(', ')}` };
  const r = (name: (typeof VERDICT_REGS)[number]): bigint => regs.get(name)!;
  const not = (why: string): Verdict => ({ lines, emulated: false, verdict: `verdict: the guest's: ${why}` });
  const lines: string[] = [];
  if ((r('cr0') & CR0_PG) === 0n || (r('efer') & EFER_LMA) === 0n) return not(`not in 64-bit paging (cr0 ${hex(r('cr0'))}, efer ${hex(r('efer'))})`);
  const touched: Array<readonly [what: string, addr: bigint, fetch: boolean]> = [
    ['the RIP', r('rip'), true], ["the IDT's #DF entry", r('idtb') + 8n * 16n, false], ["the IDT's #PF entry", r('idtb') + 14n * 16n, false],
    ['the GDT', r('gdtb'), false], ['the TSS', r('trb'), false],
  ];
  // The stack each of the two deliveries pushes onto: its IST stack when its IDT entry names one, else
  // the TSS's RSP0 when the fault came from user mode, else RSP (read through CR3; an IDT entry or TSS
  // that does not map is reported above).
  for (const [name, vector] of [['#PF', 14n], ['#DF', 8n]] as const) {
    const ist = Number((readVirtual(ram, r('cr3'), r('idtb') + vector * 16n + 4n, 1) ?? 0n) & 7n);
    const [which, top] = ist !== 0 ? [`IST${ist}`, readVirtual(ram, r('cr3'), r('trb') + 0x24n + BigInt(ist - 1) * 8n, 8)]
      : r('cpl') === 3n ? ['RSP0', readVirtual(ram, r('cr3'), r('trb') + 4n, 8)] : ['RSP', r('rsp')];
    if (top !== undefined) touched.push([`the ${name} stack below ${which}`, (top - 8n) & ((1n << 64n) - 1n), false]);
  }
  lines.push(`through CR3 ${hex(r('cr3'))}:`);
  const unmapped = touched.filter(([, addr, fetch]) => {
    const w = walkFromCr3(ram, r('cr3'), addr, fetch);
    lines.push(...w.lines);
    return !w.intact;
  });
  if (r('idtl') < IDT_PF_END) return not(`the IDT limit ${r('idtl')} does not cover the #PF and #DF entries`);
  if (unmapped.length > 0) {
    const [what, addr] = unmapped[0]!;
    return not(`${what} (${hex(addr)}) is not mapped through CR3 ${hex(r('cr3'))}${unmapped.length > 1 ? ` (nor ${unmapped.length - 1} more)` : ''}`);
  }
  return {
    lines, emulated: true,
    verdict: `verdict: the emulated CPU's: through CR3 ${hex(r('cr3'))} the RIP, the IDT's #DF and #PF entries, the GDT, the TSS and the stacks delivery pushes onto are all mapped in RAM`,
  };
}

if (process.argv[1]?.endsWith('pt-check.js')) {
  const [dump, rip, flag, cr3, ...more] = process.argv.slice(2);
  const isHex = (v: string | undefined): v is string => v !== undefined && /^0x[0-9a-f]+$/i.test(v);
  const ok = dump && isHex(rip) && (flag === undefined
    || (flag === '--vmcb' && cr3 !== undefined && more.length === 0)
    || (flag === '--cr3' && isHex(cr3) && more.every(isHex)));
  if (!ok) {
    console.error('usage: pt-check DUMP RIP [--cr3 CR3 [ADDR...] | --vmcb REGISTERS] (numbers in hex, 0x...)');
    process.exit(2);
  }
  const ram = readFileSync(dump);
  for (const l of checkKernelMapping(ram, BigInt(rip)).lines) console.log(l);
  if (flag === '--vmcb') {
    const v = emulatedCpuFault(ram, parseRegs(cr3!));
    for (const l of [...v.lines, v.verdict]) console.log(l);
  } else if (isHex(cr3)) {
    console.log(`through CR3 ${cr3}:`);
    for (const [addr, fetch] of [[rip, true], ...more.map((a) => [a, false] as const)] as const) {
      const r = walkFromCr3(ram, BigInt(cr3), BigInt(addr), fetch);
      for (const l of r.lines) console.log(l);
      if (r.lines[0]?.startsWith('CR3 ')) break; // outside RAM: the same for every address
    }
  }
}
