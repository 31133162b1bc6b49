import { describe, expect, it } from 'vitest';
import { KVM_EXIT, KvmError, RunPage } from './index.js';

// A synthetic kvm_run area as KVM lays it out: 3 pages, PIO data at 4096.
function page(): { bytes: Uint8Array; dv: DataView; run: RunPage } {
  const bytes = new Uint8Array(3 * 4096);
  return { bytes, dv: new DataView(bytes.buffer), run: new RunPage(bytes) };
}

describe('RunPage', () => {
  it('decodes_an_out_exit_and_aliases_its_data', () => {
    // Arrange
    const { bytes, dv, run } = page();
    dv.setUint32(8, KVM_EXIT.IO, true);
    bytes.set([1, 2, 0xf8, 0x03], 32); // direction out, size 2, port 0x3f8
    dv.setUint32(36, 3, true); // count
    dv.setBigUint64(40, 4096n, true); // data_offset
    bytes.set([10, 11, 12, 13, 14, 15], 4096);
    // Act
    const io = run.io();
    // Assert
    expect(run.exitName()).toBe('IO');
    expect({ ...io, data: [...io.data] }).toEqual({ direction: 'out', size: 2, port: 0x3f8, count: 3, dataOffset: 4096, data: [10, 11, 12, 13, 14, 15] });
    io.data[0] = 99;
    expect(bytes[4096]).toBe(99);
  });

  it('rejects_io_data_that_would_run_past_the_page', () => {
    // Arrange
    const { bytes, dv, run } = page();
    bytes.set([0, 4], 32); // in, size 4
    dv.setUint32(36, 3000, true); // 12000 bytes from 4096 overrun the 12288-byte area
    dv.setBigUint64(40, 4096n, true);
    // Act / Assert
    expect(() => run.io()).toThrow(expect.objectContaining({ code: 'BAD_RUN_PAGE' }));
  });

  it('rejects_an_io_access_size_that_no_instruction_makes', () => {
    // Arrange
    const { bytes, dv, run } = page();
    bytes.set([1, 3], 32);
    dv.setUint32(36, 1, true);
    dv.setBigUint64(40, 4096n, true);
    // Act / Assert
    expect(() => run.io()).toThrow(KvmError);
  });

  it('decodes_an_mmio_write_with_its_length', () => {
    // Arrange
    const { bytes, dv, run } = page();
    dv.setUint32(8, KVM_EXIT.MMIO, true);
    dv.setBigUint64(32, 0xfee0_0030n, true);
    bytes.set([0xaa, 0xbb, 0xcc, 0xdd, 0xee], 40);
    dv.setUint32(48, 4, true);
    bytes[52] = 1;
    // Act
    const m = run.mmio();
    // Assert
    expect({ ...m, data: [...m.data] }).toEqual({ physAddr: 0xfee0_0030n, len: 4, isWrite: true, data: [0xaa, 0xbb, 0xcc, 0xdd] });
  });

  it('rejects_an_mmio_length_beyond_the_8_byte_buffer', () => {
    // Arrange
    const { dv, run } = page();
    dv.setUint32(48, 16, true);
    // Act / Assert
    expect(() => run.mmio()).toThrow(expect.objectContaining({ code: 'BAD_RUN_PAGE' }));
  });

  it('clamps_system_event_data_to_the_16_stored_words', () => {
    // Arrange
    const { dv, run } = page();
    dv.setUint32(32, 2, true); // RESET
    dv.setUint32(36, 1000, true);
    dv.setBigUint64(40, 7n, true);
    // Act
    const e = run.systemEvent();
    // Assert
    expect(e.type).toBe(2);
    expect(e.data).toHaveLength(16);
    expect(e.data[0]).toBe(7n);
  });

  it('reads_eoi_vector_and_fail_entry_and_internal_error', () => {
    // Arrange
    const { bytes, dv, run } = page();
    bytes[32] = 0x41;
    // Act / Assert
    expect(run.ioapicEoi()).toEqual({ vector: 0x41 });
    dv.setBigUint64(32, 0x80000021n, true);
    dv.setUint32(40, 3, true);
    expect(run.failEntry()).toEqual({ hardwareEntryFailureReason: 0x80000021n, cpu: 3 });
    dv.setUint32(32, 1, true);
    dv.setUint32(36, 2, true);
    expect(run.internalError()).toMatchObject({ suberror: 1, ndata: 2 });
  });

  it('toggles_immediate_exit_and_interrupt_window_request_in_place', () => {
    // Arrange
    const { bytes, run } = page();
    // Act
    run.immediateExit = true;
    run.requestInterruptWindow = true;
    bytes[12] = 1;
    bytes[13] = 1;
    // Assert
    expect([bytes[0], bytes[1]]).toEqual([1, 1]);
    expect([run.readyForInterruptInjection, run.ifFlag]).toEqual([true, true]);
  });

  it('names_unknown_exit_reasons_by_number', () => {
    // Arrange
    const { dv, run } = page();
    dv.setUint32(8, 9999, true);
    // Act / Assert
    expect(run.exitName()).toBe('UNKNOWN_9999');
  });
});
