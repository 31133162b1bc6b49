import { describe, expect, it } from 'vitest';
import { IoreqDir, IoreqSlot, IoreqState, IoreqType } from '../generated/ioreq.js';
import { SharedBytes } from '../runtime/shared.js';
import { IoreqError, IoreqSlots } from './slot.js';
import type { IoreqRequest } from './slot.js';

function page(vcpus = 2): { microhv: IoreqSlots; server: IoreqSlots; mem: SharedBytes } {
  const mem = new SharedBytes(new ArrayBuffer(vcpus * IoreqSlot.SIZE));
  const microhv = new IoreqSlots(mem, 0, vcpus);
  microhv.initialise();
  return { microhv, server: new IoreqSlots(mem, 0, vcpus), mem };
}

const READ_UART_LSR: IoreqRequest = { seq: 1n, addr: 0x3fdn, data: 0n, type: IoreqType.IOREQ_TYPE_PIO, dir: IoreqDir.IOREQ_DIR_READ, size: 1, count: 1, vcpu: 1 };

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof IoreqError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('ioreq slot state machine', () => {
  it('carries_a_read_from_microhv_to_the_server_and_back', () => {
    const { microhv, server } = page();
    microhv.publish(READ_UART_LSR);

    const req = server.claim(1);
    server.complete(1, 0x1_60n);
    const data = microhv.takeResponse(1);

    expect(req).toMatchObject({ seq: 1n, addr: 0x3fdn, dir: IoreqDir.IOREQ_DIR_READ, size: 1, vcpu: 1 });
    expect(data).toBe(0x60n); // truncated to the 1-byte access
    expect(microhv.state(1)).toBe(IoreqState.IOREQ_STATE_IDLE);
  });

  it('has_no_response_before_the_server_completes', () => {
    const { microhv, server } = page();
    microhv.publish(READ_UART_LSR);
    server.claim(1);

    expect(microhv.takeResponse(1)).toBeNull();
  });

  it('refuses_to_publish_over_a_busy_slot', () => {
    const { microhv } = page();
    microhv.publish(READ_UART_LSR);

    expect(codeOf(() => microhv.publish({ ...READ_UART_LSR, seq: 2n }))).toBe('BAD_STATE');
  });

  it('withdraws_a_published_ioreq_no_server_claimed_but_not_a_claimed_one', () => {
    const { microhv, server } = page();
    microhv.publish(READ_UART_LSR);
    expect(microhv.withdraw(1)).toBe(true);
    expect(microhv.state(1)).toBe(IoreqState.IOREQ_STATE_IDLE);
    expect(server.claim(1)).toBeNull();

    microhv.publish({ ...READ_UART_LSR, seq: 2n });
    server.claim(1);
    expect(microhv.withdraw(1)).toBe(false);
    expect(microhv.state(1)).toBe(IoreqState.IOREQ_STATE_IN_PROCESS);
  });

  it('refuses_to_complete_an_unclaimed_slot', () => {
    const { microhv, server } = page();
    microhv.publish(READ_UART_LSR);

    expect(codeOf(() => server.complete(1, 0n))).toBe('BAD_STATE');
  });

  it('lets_a_restarted_server_see_the_slot_its_predecessor_claimed', () => {
    const { microhv, server, mem } = page();
    microhv.publish(READ_UART_LSR);
    server.claim(1);

    const successor = new IoreqSlots(mem, 0, 2);

    expect(successor.claim(1)?.seq).toBe(1n);
  });

  it('reports_a_malformed_slot_instead_of_serving_it', () => {
    const { microhv, server, mem } = page();
    microhv.publish(READ_UART_LSR);
    IoreqSlot.setType(mem, IoreqSlot.SIZE, 7);

    expect(codeOf(() => server.claim(1))).toBe('MALFORMED');
  });

  it('reports_an_impossible_access_size', () => {
    const { microhv, server } = page();
    microhv.publish({ ...READ_UART_LSR, size: 3 });

    expect(codeOf(() => server.claim(1))).toBe('MALFORMED');
  });

  it('rejects_a_vcpu_outside_the_page', () => {
    const { server } = page();

    expect(codeOf(() => server.claim(2))).toBe('NO_SUCH_SLOT');
  });
});
