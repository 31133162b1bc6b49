// Payloads of the two-process ring test: each direction derives its value
// from the sequence number differently, so a response can never pass for
// the request that sat in the same slot.
const MASK = (1n << 64n) - 1n;

export function requestPayload(seq: bigint): bigint {
  return (seq * 0x9e3779b97f4a7c15n) & MASK;
}

export function responsePayload(seq: bigint): bigint {
  return (seq * 0xc2b2ae3d27d4eb4fn + 1n) & MASK;
}
