import { describe, expect, it } from 'vitest';
import { RingHeader, RingProtocol, RingTestRecord } from '../generated/ring.js';
import { SharedBytes } from '../runtime/shared.js';
import { RingError } from './errors.js';
import { RING_PROTOCOLS, geometryFor } from './protocols.js';
import { BackRing, FrontRing, attachRing, initRing, ringBytes, slotSizeFor } from './ring.js';
import type { RingGeometry } from './ring.js';

const GEOMETRY: RingGeometry = { order: 3, slotSize: slotSizeFor(RingTestRecord.SIZE, RingTestRecord.SIZE), protocol: RingProtocol.RING_PROTOCOL_TEST };

function makeRing(g: RingGeometry = GEOMETRY): { mem: SharedBytes; front: FrontRing; back: BackRing } {
  const mem = new SharedBytes(new ArrayBuffer(ringBytes(g)));
  initRing(mem, 0, g);
  const geometry = attachRing(mem, 0, g.protocol);
  return { mem, front: new FrontRing(mem, 0, geometry), back: new BackRing(mem, 0, geometry) };
}

function produce(front: FrontRing, mem: SharedBytes, seq: bigint): void {
  RingTestRecord.write(mem, front.requestOffset(), { seq, payload: seq * 3n, length: 0 });
  front.commitRequest();
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof RingError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('ring geometry', () => {
  it('sizes_each_protocol_slot_for_its_larger_record', () => {
    expect(geometryFor(RING_PROTOCOLS.RING_PROTOCOL_BUFFERED_IOREQ, 5)).toEqual({ order: 5, slotSize: 24, protocol: RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ });
    expect(geometryFor(RING_PROTOCOLS.RING_PROTOCOL_EVTCHN_OP, 0).slotSize).toBe(16);
  });

  it('puts_front_and_back_indices_on_separate_cache_lines', () => {
    expect(RingHeader.SIZE).toBe(128);
    expect(Math.floor(RingHeader.OFFSET.reqProd / 64)).toBe(Math.floor(RingHeader.OFFSET.rspEvent / 64));
    expect(Math.floor(RingHeader.OFFSET.rspProd / 64)).toBe(Math.floor(RingHeader.OFFSET.reqEvent / 64));
    expect(Math.floor(RingHeader.OFFSET.reqProd / 64)).not.toBe(Math.floor(RingHeader.OFFSET.rspProd / 64));
  });

  it('rejects_attach_with_bad_magic', () => {
    const mem = new SharedBytes(new ArrayBuffer(ringBytes(GEOMETRY)));
    expect(codeOf(() => attachRing(mem, 0, RingProtocol.RING_PROTOCOL_TEST))).toBe('BAD_HEADER');
  });

  it('rejects_attach_when_peer_claims_a_ring_larger_than_the_buffer', () => {
    const { mem } = makeRing();
    RingHeader.setOrder(mem, 0, 10);
    expect(codeOf(() => attachRing(mem, 0, RingProtocol.RING_PROTOCOL_TEST))).toBe('BAD_HEADER');
  });

  it('rejects_attach_with_unaligned_slot_size', () => {
    const { mem } = makeRing();
    RingHeader.setSlotSize(mem, 0, 20);
    expect(codeOf(() => attachRing(mem, 0, RingProtocol.RING_PROTOCOL_TEST))).toBe('BAD_HEADER');
  });

  it('rejects_attach_for_another_protocol', () => {
    const { mem } = makeRing();
    expect(codeOf(() => attachRing(mem, 0, RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ))).toBe('BAD_HEADER');
  });
});

describe('ring traffic', () => {
  it('delivers_requests_and_responses_in_order', () => {
    const { mem, front, back } = makeRing();
    for (let i = 0n; i < 5n; i++) produce(front, mem, i);
    front.pushRequests();

    const seen: bigint[] = [];
    expect(back.unconsumedRequests()).toBe(5);
    while (back.unconsumedRequests() > 0) {
      const req = RingTestRecord.read(mem, back.requestOffset());
      back.consumeRequest();
      RingTestRecord.write(mem, back.responseOffset(), { seq: req.seq, payload: req.payload + 1n, length: 0 });
      back.commitResponse();
      seen.push(req.seq);
    }
    back.pushResponses();
    const answers: bigint[] = [];
    while (front.unconsumedResponses() > 0) {
      answers.push(RingTestRecord.read(mem, front.responseOffset()).payload);
      front.consumeResponse();
    }

    expect(seen).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(answers).toEqual([1n, 4n, 7n, 10n, 13n]);
    expect(front.freeRequests()).toBe(8);
  });

  it('refuses_a_request_when_every_slot_is_in_use', () => {
    const { mem, front } = makeRing();
    for (let i = 0n; i < 8n; i++) produce(front, mem, i);

    expect(codeOf(() => front.requestOffset())).toBe('FULL');
  });

  it('keeps_working_across_index_wraparound', () => {
    const { mem } = makeRing();
    const start = 0xffff_fffc;
    RingHeader.storeReqProd(mem, 0, start);
    RingHeader.storeRspProd(mem, 0, start);
    const front = new FrontRing(mem, 0, GEOMETRY, { reqProdPvt: start, rspCons: start });
    const back = new BackRing(mem, 0, GEOMETRY, { reqCons: start, rspProdPvt: start });

    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 6; i++) produce(front, mem, BigInt(round * 6 + i));
      front.pushRequests();
      expect(back.unconsumedRequests()).toBe(6);
      for (let i = 0; i < 6; i++) {
        expect(RingTestRecord.read(mem, back.requestOffset()).seq).toBe(BigInt(round * 6 + i));
        back.consumeRequest();
        back.commitResponse();
      }
      back.pushResponses();
      expect(front.unconsumedResponses()).toBe(6);
      for (let i = 0; i < 6; i++) front.consumeResponse();
    }

    expect(front.reqProdPvt).toBe((start + 18) >>> 0);
  });
});

describe('notification hold-off', () => {
  it('notifies_the_first_push_on_a_fresh_ring', () => {
    const { mem, front } = makeRing();
    produce(front, mem, 0n);

    expect(front.pushRequests()).toBe(true);
  });

  it('skips_notification_while_the_consumer_has_not_asked_again', () => {
    const { mem, front } = makeRing();
    produce(front, mem, 0n);
    front.pushRequests();
    produce(front, mem, 1n);

    expect(front.pushRequests()).toBe(false);
  });

  it('notifies_again_after_the_consumer_final_check_found_nothing', () => {
    const { mem, front, back } = makeRing();
    produce(front, mem, 0n);
    front.pushRequests();
    back.unconsumedRequests();
    back.consumeRequest();
    expect(back.finalCheckForRequests()).toBe(false);
    produce(front, mem, 1n);

    expect(front.pushRequests()).toBe(true);
  });

  it('final_check_reports_work_pushed_before_it', () => {
    const { mem, front, back } = makeRing();
    produce(front, mem, 0n);
    front.pushRequests();

    expect(back.finalCheckForRequests()).toBe(true);
  });

  it('notifies_the_front_only_when_it_asked_for_responses', () => {
    const { mem, front, back } = makeRing();
    produce(front, mem, 0n);
    produce(front, mem, 1n);
    front.pushRequests();
    back.unconsumedRequests();
    back.consumeRequest();
    back.commitResponse();
    expect(back.pushResponses()).toBe(true); // rsp_event starts at 1
    back.consumeRequest();
    back.commitResponse();

    expect(back.pushResponses()).toBe(false);
  });
});

describe('hostile peer indices', () => {
  it('rejects_prod_moving_backwards', () => {
    const { mem, front, back } = makeRing();
    for (let i = 0n; i < 4n; i++) produce(front, mem, i);
    front.pushRequests();
    back.unconsumedRequests();
    RingHeader.storeReqProd(mem, 0, 2);

    expect(codeOf(() => back.unconsumedRequests())).toBe('PROD_BACKWARDS');
  });

  it('rejects_req_prod_more_than_the_ring_size_ahead', () => {
    const { mem, back } = makeRing();
    RingHeader.storeReqProd(mem, 0, 9);

    expect(codeOf(() => back.unconsumedRequests())).toBe('PROD_TOO_FAR');
  });

  it('accepts_req_prod_exactly_the_ring_size_ahead', () => {
    const { mem, back } = makeRing();
    RingHeader.storeReqProd(mem, 0, 8);

    expect(back.unconsumedRequests()).toBe(8);
  });

  it('rejects_rsp_prod_beyond_the_requests_pushed', () => {
    const { mem, front } = makeRing();
    produce(front, mem, 0n);
    front.pushRequests();
    RingHeader.storeRspProd(mem, 0, 2);

    expect(codeOf(() => front.unconsumedResponses())).toBe('PROD_TOO_FAR');
  });

  it('rejects_rsp_prod_moving_backwards', () => {
    const { mem, front, back } = makeRing();
    for (let i = 0n; i < 3n; i++) produce(front, mem, i);
    front.pushRequests();
    back.unconsumedRequests();
    for (let i = 0; i < 3; i++) {
      back.consumeRequest();
      back.commitResponse();
    }
    back.pushResponses();
    front.unconsumedResponses();
    RingHeader.storeRspProd(mem, 0, 1);

    expect(codeOf(() => front.unconsumedResponses())).toBe('PROD_BACKWARDS');
  });

  it('stays_broken_after_a_peer_index_error', () => {
    const { mem, back } = makeRing();
    RingHeader.storeReqProd(mem, 0, 1000);
    codeOf(() => back.unconsumedRequests());
    RingHeader.storeReqProd(mem, 0, 0);

    expect(codeOf(() => back.unconsumedRequests())).toBe('BROKEN');
    expect(back.error?.code).toBe('PROD_TOO_FAR');
  });

  it('never_reports_more_requests_than_slots_for_any_index_the_peer_writes', () => {
    let state = 0x12345678;
    const rand = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state;
    };
    for (let trial = 0; trial < 2000; trial++) {
      const { mem, back } = makeRing();
      for (let step = 0; step < 8; step++) {
        RingHeader.storeReqProd(mem, 0, rand() % 3 === 0 ? rand() : rand() % 12);
        try {
          const n = back.unconsumedRequests();
          expect(n).toBeLessThanOrEqual(back.size);
          if (n > 0 && rand() % 2 === 0) {
            back.consumeRequest();
            back.commitResponse();
            back.pushResponses();
          }
        } catch (e) {
          expect(e).toBeInstanceOf(RingError);
          expect(['PROD_BACKWARDS', 'PROD_TOO_FAR', 'BROKEN']).toContain((e as RingError).code);
        }
      }
    }
  });
});
