// The build's ABI check (abiViolations) must reject modules that could hold state outside
// linear memory or trap; these hand-made modules each break one rule.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { abiViolations } from './build.js';

/** A module with the ioapic's required exports as empty functions, plus `extra` applied. */
function moduleWith(extra: (m: binaryen.Module) => void): binaryen.Module {
  const m = new binaryen.Module();
  m.setMemory(1, 1, 'memory');
  for (const name of ['abi_version', 'state_base', 'state_size', 'state_valid', 'init', 'reset', 'ioreq', 'counter', 'counter_count', 'set_irq', 'eoi', 'route_generation', 'route_addr', 'route_data', 'route_flags']) {
    m.addFunction(name, binaryen.none, binaryen.none, [], m.nop());
    m.addFunctionExport(name, name);
  }
  extra(m);
  return m;
}

function violations(extra: (m: binaryen.Module) => void): string[] {
  const m = moduleWith(extra);
  try {
    return abiViolations('ioapic', m);
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
