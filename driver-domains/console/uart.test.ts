// The 16550A model through port I/O, as Linux's 8250 driver and a console use it.
import { beforeEach, describe, expect, it } from 'vitest';
import { COM1 } from '../../boot/layout.js';
import { ConsoleCounter } from '../runtime/abi.js';
import { StubHarness } from '../runtime/testing.js';

// PC16550D register offsets and bits, spelled out independently of the model.
const RBR = COM1.port, THR = COM1.port, DLL = COM1.port, IER = COM1.port + 1, DLM = COM1.port + 1;
const IIR = COM1.port + 2, FCR = COM1.port + 2, LCR = COM1.port + 3, MCR = COM1.port + 4;
const LSR = COM1.port + 5, MSR = COM1.port + 6, SCR = COM1.port + 7;
const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04, IER_MSI = 0x08;
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
const LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const IIR_NO_INT = 0x01;

type Console = StubHarness<'console'>;
let h: Console;
beforeEach(async () => {
  h = await StubHarness.create('console');
});

/** IIR with the FIFO bits (7:6) stripped. */
function iirId(c: Console): number {
  return c.pioRead(IIR) & 0x0f;
}

describe('registers', () => {
  it('divisor_latch_round_trips_under_dlab_and_leaves_ier_alone', () => {
    h.pioWrite(LCR, 0x83);
    h.pioWrite(DLL, 0x01);
    h.pioWrite(DLM, 0x02);

    const dll = h.pioRead(DLL), dlm = h.pioRead(DLM);
    h.pioWrite(LCR, 0x03);

    expect([dll, dlm]).toEqual([0x01, 0x02]);
    expect(h.pioRead(IER)).toBe(0);
    expect(h.pioRead(LCR)).toBe(0x03);
  });

  it('scratch_register_holds_any_byte', () => {
    h.pioWrite(SCR, 0xa5);

    expect(h.pioRead(SCR)).toBe(0xa5);
  });

  it('ier_keeps_only_its_four_bits', () => {
    // Linux's autoconfig writes 0x0f and, for XScale detection, bit 6.
    h.pioWrite(IER, 0xff);

    expect(h.pioRead(IER)).toBe(0x0f);
  });

  it('lsr_reports_transmitter_empty_after_power_on', () => {
    expect(h.pioRead(LSR)).toBe(LSR_THRE | LSR_TEMT);
  });

  it('fifo_enable_shows_in_iir_bits_7_6', () => {
    h.pioWrite(FCR, 0x01);

    expect(h.pioRead(IIR)).toBe(0xc0 | IIR_NO_INT);
  });

  it('mcr_keeps_only_its_five_bits', () => {
    h.pioWrite(MCR, 0xff);

    expect(h.pioRead(MCR)).toBe(0x1f);
  });

  it('word_access_is_split_into_byte_registers', () => {
    h.pioWrite(LCR, 0x80);

    h.pioWrite(DLL, 0x0201, 2);

    expect(h.pioRead(DLL, 2)).toBe(0x0201);
  });
});

describe('transmit', () => {
  it('tx_bytes_come_out_in_order_via_tx_drain', () => {
    for (const c of 'hello, world\n') h.pioWrite(THR, c.charCodeAt(0));

    expect(h.drainText()).toBe('hello, world\n');
    expect(h.drainText()).toBe('');
  });

  it('full_transmit_buffer_drops_and_counts_without_blocking', () => {
    for (let i = 0; i < 4096 + 10; i++) h.pioWrite(THR, 0x41 + (i % 26));

    const out = h.drainText();

    expect(out).toHaveLength(4096);
    expect(out.slice(0, 3)).toBe('ABC');
    expect(h.counter(ConsoleCounter.TxDropped)).toBe(10n);
  });

  it('thre_interrupt_is_raised_by_an_ier_write_with_thri', () => {
    h.pioWrite(IER, IER_THRI);

    expect(iirId(h)).toBe(0x02);
  });

  it('reading_iir_clears_thre_and_rewriting_ier_rearms_it', () => {
    // The sequence of serial8250_do_startup's UART_BUG_THRE test.
    h.pioWrite(IER, IER_THRI);
    const first = iirId(h);
    const afterRead = iirId(h);
    h.pioWrite(IER, 0);
    h.pioWrite(IER, IER_THRI);

    expect([first, afterRead, iirId(h)]).toEqual([0x02, IIR_NO_INT, 0x02]);
  });

  it('ier_rewrite_with_thri_already_set_rearms_thre', () => {
    h.pioWrite(IER, IER_THRI);
    iirId(h);

    h.pioWrite(IER, IER_THRI | IER_RDI);

    expect(iirId(h)).toBe(0x02);
  });

  it('thr_write_rearms_the_thre_interrupt', () => {
    h.pioWrite(IER, IER_THRI);
    iirId(h);

    h.pioWrite(THR, 0x41);

    expect(iirId(h)).toBe(0x02);
  });
});

describe('receive', () => {
  it('rx_bytes_read_back_in_order_with_dr', () => {
    h.pioWrite(FCR, 0x01);
    for (const b of [0x61, 0x62, 0x63]) expect(h.exports.rx(b)).toBe(1);

    const read: number[] = [];
    while (h.pioRead(LSR) & LSR_DR) read.push(h.pioRead(RBR));

    expect(read).toEqual([0x61, 0x62, 0x63]);
  });

  it('rx_refuses_input_when_the_fifo_is_full', () => {
    h.pioWrite(FCR, 0x01);
    for (let i = 0; i < 16; i++) h.exports.rx(i);

    expect(h.exports.rx(0x99)).toBe(0);
    expect(h.counter(ConsoleCounter.RxRejected)).toBe(1n);
    expect(h.pioRead(LSR) & LSR_OE).toBe(0);
  });

  it('without_fifo_the_receiver_holds_one_byte', () => {
    expect(h.exports.rx(1)).toBe(1);

    expect(h.exports.rx(2)).toBe(0);
  });

  it('fcr_rx_clear_empties_the_fifo', () => {
    h.pioWrite(FCR, 0x01);
    h.exports.rx(1);

    h.pioWrite(FCR, 0x03);

    expect(h.pioRead(LSR) & LSR_DR).toBe(0);
  });

  it('data_below_trigger_level_reports_timeout_and_at_level_reports_data_available', () => {
    h.pioWrite(FCR, 0x41); // FIFO on, trigger 4
    h.pioWrite(IER, IER_RDI);
    h.exports.rx(1);
    const below = iirId(h);
    for (let i = 0; i < 3; i++) h.exports.rx(2);

    expect([below, iirId(h)]).toEqual([0x0c, 0x04]);
  });
});

describe('loopback', () => {
  it('loopback_returns_transmitted_bytes_instead_of_sending_them', () => {
    h.pioWrite(FCR, 0x01);
    h.pioWrite(MCR, MCR_LOOP);

    h.pioWrite(THR, 0x5a);

    expect(h.pioRead(RBR)).toBe(0x5a);
    expect(h.drainText()).toBe('');
  });

  it('loopback_maps_modem_outputs_to_inputs_as_linux_autoconfig_expects', () => {
    h.pioWrite(MCR, MCR_LOOP | 0x0a);

    expect(h.pioRead(MSR) & 0xf0).toBe(0x90);
  });

  it('loopback_overrun_sets_oe_keeps_fifo_order_and_counts', () => {
    h.pioWrite(FCR, 0x01);
    h.pioWrite(MCR, MCR_LOOP);
    for (let i = 0; i < 17; i++) h.pioWrite(THR, i);

    const lsr = h.pioRead(LSR);
    const read: number[] = [];
    while (h.pioRead(LSR) & LSR_DR) read.push(h.pioRead(RBR));

    expect(lsr & LSR_OE).toBe(LSR_OE);
    expect(h.pioRead(LSR) & LSR_OE).toBe(0);
    expect(read).toEqual([...Array(16).keys()]);
    expect(h.counter(ConsoleCounter.RxOverrun)).toBe(1n);
  });

  it('host_input_is_refused_in_loopback', () => {
    h.pioWrite(MCR, MCR_LOOP);

    expect(h.exports.rx(0x41)).toBe(0);
  });
});

describe('interrupts', () => {
  it('iir_reports_line_status_before_data_before_thre', () => {
    h.pioWrite(FCR, 0x01);
    h.pioWrite(IER, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
    h.pioWrite(MCR, MCR_LOOP);
    for (let i = 0; i < 17; i++) h.pioWrite(THR, i); // overrun: line status

    const order = [iirId(h)];
    h.pioRead(LSR);
    order.push(iirId(h));
    while (h.pioRead(LSR) & LSR_DR) h.pioRead(RBR);
    order.push(iirId(h));

    expect(order).toEqual([0x06, 0x04, 0x02]); // 16 bytes are above the trigger level of 1
  });

  it('modem_status_interrupt_comes_last_and_clears_on_msr_read', () => {
    h.pioWrite(IER, IER_MSI);
    h.pioWrite(MCR, MCR_LOOP | MCR_DTR);

    const before = iirId(h);
    h.pioRead(MSR);

    expect([before, iirId(h)]).toEqual([0x00, IIR_NO_INT]);
  });

  it('irq_line_follows_out2', () => {
    h.pioWrite(IER, IER_THRI);
    expect(h.pins()).toEqual([]);

    h.pioWrite(MCR, MCR_OUT2);
    h.pioWrite(MCR, MCR_DTR | MCR_RTS);

    expect(h.pins()).toEqual([{ kind: 'pin', gsi: COM1.irq, level: 1 }, { kind: 'pin', gsi: COM1.irq, level: 0 }]);
  });

  it('irq_line_drops_when_the_interrupt_is_serviced', () => {
    h.pioWrite(MCR, MCR_OUT2);
    h.pioWrite(IER, IER_RDI);
    h.exports.rx(0x41);

    h.pioRead(RBR);

    expect(h.pins().map((p) => p.level)).toEqual([1, 0]);
  });

  it('irq_line_stays_low_in_loopback', () => {
    h.pioWrite(IER, IER_THRI);

    h.pioWrite(MCR, MCR_LOOP | MCR_OUT2);

    expect(h.pins()).toEqual([]);
    expect(iirId(h)).toBe(0x02);
  });

  it('reset_clears_registers_and_drops_the_line_but_keeps_scratch_and_output', () => {
    h.pioWrite(SCR, 0x77);
    h.pioWrite(THR, 0x41);
    h.pioWrite(MCR, MCR_OUT2);
    h.pioWrite(IER, IER_THRI);

    h.exports.reset();

    expect(h.pioRead(IER)).toBe(0);
    expect(h.pioRead(MCR)).toBe(0);
    expect(h.pioRead(SCR)).toBe(0x77);
    expect(h.pins().at(-1)).toEqual({ kind: 'pin', gsi: COM1.irq, level: 0 });
    expect(h.drainText()).toBe('A');
  });
});
