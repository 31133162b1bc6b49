// Shared pieces of every ACPI table: the header, the checksum and the Generic Address Structure.
import { Bytes, byteSum } from '../bytes.js';

export const OEM_ID = 'MICRHV';        // 6 bytes
export const OEM_TABLE_ID = 'MICROHV ';  // 8 bytes
export const CREATOR_ID = 'MHV ';
export const HEADER_SIZE = 36;

/** A finished table: its bytes with length and checksum filled in, and where it goes. */
export interface AcpiTable { readonly signature: string; readonly gpa: number; readonly bytes: Uint8Array }

/**
 * System Description Table Header (ACPI 6.5, 5.2.6, Table 5.4). `body` is the table after the
 * header; the length and checksum are computed here, last, so no table can get them wrong.
 */
export function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Bytes(HEADER_SIZE + body.byteLength);
  t.ascii(0, signature).u32(4, t.u8.byteLength).u8at(8, revision).ascii(10, OEM_ID).ascii(16, OEM_TABLE_ID)
    .u32(24, 1).ascii(28, CREATOR_ID).u32(32, 1).set(HEADER_SIZE, body);
  t.u8at(9, (256 - byteSum(t.u8)) & 0xff);
  return t.u8;
}

/** Generic Address Structure address space ids (ACPI 6.5, 5.2.3.2, Table 5.1). */
export enum AddressSpace { SystemMemory = 0, SystemIo = 1 }
/** GAS access sizes (Table 5.1): 1 = byte, 2 = word, 3 = dword, 4 = qword. */
export enum AccessSize { Undefined = 0, Byte = 1, Word = 2, Dword = 3, Qword = 4 }
export interface Gas { space: AddressSpace; bitWidth: number; access: AccessSize; address: number }

export function writeGas(b: Bytes, off: number, g: Gas): void {
  b.u8at(off, g.space).u8at(off + 1, g.bitWidth).u8at(off + 2, 0).u8at(off + 3, g.access).u64(off + 4, g.address);
}
