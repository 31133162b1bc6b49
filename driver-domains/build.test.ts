// The build's ABI check (abiViolations) must reject modules that could hold state outside
// linear memory or trap; these hand-made modules each break one rule.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { abiViolations } from './build.js';
import { STUB_FUNCTIONS, type StubKind } from './runtime/abi.js';

/** A module with the required exports of `kind` as empty functions, plus `extra` applied. */
function moduleWith(extra: (m: binaryen.Module) => void, kind: StubKind = 'ioapic'): binaryen.Module {
  const m = new binaryen.Module();
  m.setMemory(1, 1, 'memory');
  for (const name of STUB_FUNCTIONS[kind]) {
    m.addFunction(name, binaryen.none, binaryen.none, [], m.nop());
    m.addFunctionExport(name, name);
  }
  extra(m);
  return m;
}

function violations(extra: (m: binaryen.Module) => void, kind: StubKind = 'ioapic'): string[] {
  const m = moduleWith(extra, kind);
  try {
    return abiViolations(kind, m);
  } finally {
    m.dispose();
  }
}

describe('abiViolations', () => {
  it('accepts_a_module_that_follows_the_rules', () => {
    expect(violations(() => undefined)).toEqual([]);
  });

  it('rejects_a_mutable_global', () => {
    expect(violations((m) => m.addGlobal('g', binaryen.i32, true, m.i32.const(0))).join()).toMatch(/mutable global/);
  });

  it('rejects_an_import_outside_the_allowed_set', () => {
    expect(violations((m) => m.addFunctionImport('now_ns', 'env', 'now_ns', binaryen.none, binaryen.i64)).join())
      .toMatch(/env\.now_ns is not allowed/);
  });

  it('lets_pci_drive_lines_but_not_send_msis', () => {
    const setPin = violations((m) => m.addFunctionImport('set_pin', 'env', 'set_pin', binaryen.createType([binaryen.i32, binaryen.i32]), binaryen.none), 'pci');
    const msi = violations((m) => m.addFunctionImport('msi', 'env', 'msi', binaryen.createType([binaryen.i64, binaryen.i32]), binaryen.none), 'pci');

    expect(setPin).toEqual([]);
    expect(msi.join()).toMatch(/env\.msi is not allowed for pci/);
  });

  it('rejects_unreachable', () => {
    expect(violations((m) => m.addFunction('trap', binaryen.none, binaryen.none, [], m.unreachable())).join())
      .toMatch(/unreachable/);
  });

  it('rejects_a_start_function', () => {
    expect(violations((m) => {
      const f = m.addFunction('start', binaryen.none, binaryen.none, [], m.nop());
      m.setStart(f);
    }).join()).toMatch(/start function/);
  });

  it('rejects_a_missing_export', () => {
    expect(violations((m) => m.removeExport('eoi')).join()).toMatch(/missing export eoi/);
  });
});
