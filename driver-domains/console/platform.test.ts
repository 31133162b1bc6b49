// The platform devices of the console domain: i8042 reset, ACPI PM1 blocks, PM timer.
import { beforeEach, describe, expect, it } from 'vitest';
import { ACPI_PM, I8042, SCI_IRQ, SLEEP_TYPE_S5 } from '../../boot/layout.js';
import { ConsoleCounter, PlatformEvent } from '../runtime/abi.js';
import { FakeClock, StubHarness } from '../runtime/testing.js';

// ACPI 6.5 Tables 4.13, 4.14 and 4.16, spelled out independently of the model.
const PM1_STS = ACPI_PM.pm1aEvent, PM1_EN = ACPI_PM.pm1aEvent + 2, PM1_CNT = ACPI_PM.pm1aControl;
const SCI_EN = 1 << 0, SLP_EN = 1 << 13, PWRBTN = 1 << 8, TMR = 1 << 0;
const slpTyp = (t: number): number => t << 10;

type Console = StubHarness<'console'>;
let h: Console;
let clock: FakeClock;
beforeEach(async () => {
  clock = new FakeClock();
  h = await StubHarness.create('console', { clock });
});

describe('i8042', () => {
  it('status_reads_no_data_and_empty_input_buffer', () => {
    expect(h.pioRead(I8042.command) & 0x03).toBe(0);
  });

  it('data_port_reads_zero', () => {
    expect(h.pioRead(I8042.data)).toBe(0);
  });

  it('reset_command_requests_platform_reset', () => {
    h.pioWrite(I8042.command, I8042.resetCommand);

    expect(h.exports.platform_event()).toBe(PlatformEvent.Reset);
  });

  it('other_commands_are_ignored_and_counted', () => {
    h.pioWrite(I8042.command, 0xaa);
    h.pioWrite(I8042.data, 0xf4);

    expect(h.exports.platform_event()).toBe(PlatformEvent.None);
    expect(h.counter(ConsoleCounter.IgnoredCommand)).toBe(2n);
  });

  it('platform_event_stays_pending_until_cleared', () => {
    h.pioWrite(I8042.command, I8042.resetCommand);
    const first = h.exports.platform_event();

    h.exports.platform_event_clear();

    expect([first, h.exports.platform_event()]).toEqual([PlatformEvent.Reset, PlatformEvent.None]);
  });
});

describe('PM1 control', () => {
  it('sci_en_reads_as_set', () => {
    expect(h.pioRead(PM1_CNT, 2) & SCI_EN).toBe(SCI_EN);
  });

  it('slp_en_with_s5_type_requests_poweroff', () => {
    // ACPICA writes the type first, then the type with SLP_EN.
    h.pioWrite(PM1_CNT, slpTyp(SLEEP_TYPE_S5), 2);
    expect(h.exports.platform_event()).toBe(PlatformEvent.None);

    h.pioWrite(PM1_CNT, slpTyp(SLEEP_TYPE_S5) | SLP_EN, 2);

    expect(h.exports.platform_event()).toBe(PlatformEvent.PowerOff);
  });

  it('slp_en_with_another_type_requests_sleep', () => {
    h.pioWrite(PM1_CNT, slpTyp(1) | SLP_EN, 2);

    expect(h.exports.platform_event()).toBe(PlatformEvent.Sleep);
  });

  it('poweroff_is_not_downgraded_by_a_later_reset_request', () => {
    h.pioWrite(PM1_CNT, slpTyp(SLEEP_TYPE_S5) | SLP_EN, 2);

    h.pioWrite(I8042.command, I8042.resetCommand);

    expect(h.exports.platform_event()).toBe(PlatformEvent.PowerOff);
  });

  it('slp_typ_reads_back_and_slp_en_reads_zero', () => {
    h.pioWrite(PM1_CNT, slpTyp(SLEEP_TYPE_S5) | SLP_EN, 2);

    expect(h.pioRead(PM1_CNT, 2)).toBe(slpTyp(SLEEP_TYPE_S5) | SCI_EN);
  });
});

describe('PM1 events and the SCI', () => {
  it('power_button_with_enable_asserts_sci_and_write_one_clears_it', () => {
    h.pioWrite(PM1_EN, PWRBTN, 2);

    h.exports.power_button();
    const sts = h.pioRead(PM1_STS, 2);
    h.pioWrite(PM1_STS, PWRBTN, 2);

    expect(sts & PWRBTN).toBe(PWRBTN);
    expect(h.pins()).toEqual([{ kind: 'pin', gsi: SCI_IRQ, level: 1 }, { kind: 'pin', gsi: SCI_IRQ, level: 0 }]);
  });

  it('power_button_without_enable_sets_status_only', () => {
    h.exports.power_button();

    expect(h.pioRead(PM1_STS, 2) & PWRBTN).toBe(PWRBTN);
    expect(h.pins()).toEqual([]);
  });

  it('enable_register_keeps_only_defined_bits', () => {
    h.pioWrite(PM1_EN, 0xffff, 2);

    expect(h.pioRead(PM1_EN, 2)).toBe(0x4721);
  });

  it('whole_event_block_reads_status_and_enable_in_one_dword', () => {
    h.pioWrite(PM1_EN, PWRBTN, 2);
    h.exports.power_button();

    expect(h.pioRead(PM1_STS, 4)).toBe((PWRBTN << 16) | PWRBTN);
  });
});

describe('PM timer', () => {
  it('pm_timer_counts_at_3579545_hz', () => {
    const t0 = h.pioRead(ACPI_PM.pmTimer, 4);

    clock.advance(1_000_000_000n);

    expect(h.pioRead(ACPI_PM.pmTimer, 4) - t0).toBe(3_579_545);
  });

  it('pm_timer_increases_between_reads', () => {
    const values: number[] = [];
    for (let i = 0; i < 5; i++) {
      values.push(h.pioRead(ACPI_PM.pmTimer, 4));
      clock.advance(1_000n);
    }

    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1] ?? Infinity);
  });

  it('pm_timer_wraps_at_32_bits_and_sets_tmr_sts_on_bit_31_change', () => {
    // 2^31 ticks is about 600 s.
    clock.advance(600_000_000_000n);
    const sts = h.pioRead(PM1_STS, 2);

    expect(sts & TMR).toBe(TMR);
    clock.advance(600_000_000_000n);
    expect(h.pioRead(ACPI_PM.pmTimer, 4)).toBe(Number((1_200n * 3_579_545n) % (1n << 32n)));
  });

  it('pm_timer_stays_exact_after_hours', () => {
    clock.advance(10n * 3600n * 1_000_000_000n + 123_456_789n);

    const expected = ((10n * 3600n * 1_000_000_000n + 123_456_789n) * 3_579_545n / 1_000_000_000n) % (1n << 32n);

    expect(h.pioRead(ACPI_PM.pmTimer, 4)).toBe(Number(expected));
  });

  it('pm_timer_write_is_counted_as_invalid', () => {
    h.pioWrite(ACPI_PM.pmTimer, 0, 4);

    expect(h.counter(ConsoleCounter.InvalidAccess)).toBe(1n);
  });
});

describe('platform reset', () => {
  it('reset_clears_pm_registers_event_and_sci', () => {
    h.pioWrite(PM1_EN, PWRBTN, 2);
    h.exports.power_button();
    h.pioWrite(I8042.command, I8042.resetCommand);

    h.exports.reset();

    expect(h.pioRead(PM1_EN, 2)).toBe(0);
    expect(h.exports.platform_event()).toBe(PlatformEvent.None);
    expect(h.pins().at(-1)).toEqual({ kind: 'pin', gsi: SCI_IRQ, level: 0 });
  });
});
